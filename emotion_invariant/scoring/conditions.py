"""Per-condition trial groups for emotion-robustness reports.

Every report breaks results down by the trial list's fourth column
(``<enrol emotion>-<test emotion>``): all trials, the groups that
:func:`emotion_invariant.data.trials.condition_groups` assigns (``N-N``,
``N-E``, ``E-E same``, ``E-E cross``, ...), and each raw condition value, in
one fixed order so that reports of different systems line up row by row.
"""

import numpy as np

from emotion_invariant.data.manifest import EMOTIONS, ManifestError
from emotion_invariant.data.trials import condition_groups

ALL = "all"
SUMMARY_GROUPS = ("N-N", "N-E", "E-E same", "E-E cross", "E-N")
NEUTRAL = "neu"


def group_order(name):
    """Sort key: all, summary groups, ``neu-X``, other pairs, the rest.

    Emotions follow the shared vocabulary's order.

    Example
    -------
    >>> sorted(["ang-sad", "neu-ang", "N-E", "all", "neu-neu", "N-N"],
    ...        key=group_order)
    ['all', 'N-N', 'N-E', 'neu-neu', 'neu-ang', 'ang-sad']
    """
    if name == ALL:
        return (0,)
    if name in SUMMARY_GROUPS:
        return (1, SUMMARY_GROUPS.index(name))
    enrol, _, test = name.partition("-")
    if enrol in EMOTIONS and test in EMOTIONS:
        rank = (EMOTIONS.index(enrol), EMOTIONS.index(test))
        return (2, *rank) if enrol == NEUTRAL else (3, *rank)
    return (4, name)


def condition_masks(trials):
    """Boolean trial masks for every report group, in report order.

    Arguments
    ---------
    trials : Trials
        A trial list; without a condition column only ``all`` is returned.

    Returns
    -------
    dict
        Group name -> bool ``[T]`` numpy mask, ``all`` first.

    Example
    -------
    >>> from emotion_invariant.scoring.trial_list import Trials
    >>> trials = Trials.from_records([(1, "a", "b", "neu-ang"),
    ...                               (0, "a", "c", "neu-neu"),
    ...                               (0, "c", "b", "sad-ang")])
    >>> {k: v.tolist() for k, v in condition_masks(trials).items()}
    ... # doctest: +NORMALIZE_WHITESPACE
    {'all': [True, True, True], 'N-N': [False, True, False],
     'N-E': [True, False, False], 'E-E cross': [False, False, True],
     'neu-neu': [False, True, False], 'neu-ang': [True, False, False],
     'sad-ang': [False, False, True]}
    """
    masks = {ALL: np.ones(len(trials), dtype=bool)}
    if trials.condition is None:
        return masks
    members = {}
    for code, condition in enumerate(trials.conditions):
        try:
            names = [*condition_groups(condition), condition]
        except ValueError as err:
            raise ManifestError(f"{trials.source}: {err}") from err
        for name in dict.fromkeys(names):
            members.setdefault(name, []).append(code)
    for name in sorted(members, key=group_order):
        mask = np.isin(trials.condition, members[name])
        if mask.any():
            masks[name] = mask
    return masks
