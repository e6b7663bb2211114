"""Speaker-independent folds and splits, balanced by gender.

Emotion benchmarks leak speakers when utterances, not speakers, are split
(random IEMOCAP splits; one published CREMA-D fold). Here every fold and
every train/dev/test split is a set of whole speakers, drawn
deterministically from a seed, with each gender spread evenly across
folds and splits.
"""

import random
from collections import defaultdict


def _gender_groups(genders, seed):
    """Speakers grouped by gender, each group shuffled by ``seed``."""
    groups = defaultdict(list)
    for spk in sorted(genders):
        groups[genders[spk] or ""].append(spk)
    rng = random.Random(seed)
    ordered = []
    for gender in sorted(groups):
        speakers = groups[gender]
        rng.shuffle(speakers)
        ordered.append(speakers)
    return ordered


def speaker_folds(genders, held_out=4, seed=0):
    """Assign every speaker to one fold of about ``held_out`` speakers.

    Speakers of each gender are dealt in turn over the folds, so every
    fold holds the same number of each gender, give or take one.

    Arguments
    ---------
    genders : dict
        Speaker id -> gender (``"M"``, ``"F"``, or ``""`` when unknown).
    held_out : int
        Wanted number of speakers per fold (at least 1).
    seed : int
        The same speakers and seed always give the same folds.

    Returns
    -------
    dict
        Speaker id -> fold label ``"1"`` ... ``"K"``, with
        ``K = max(2, round(n_speakers / held_out))`` (capped at the number
        of speakers).

    Example
    -------
    >>> genders = {f"s{i}": "MF"[i % 2] for i in range(8)}
    >>> folds = speaker_folds(genders, held_out=4, seed=0)
    >>> sorted(set(folds.values()))
    ['1', '2']
    >>> [sorted(genders[s] for s in folds if folds[s] == k) for k in "12"]
    [['F', 'F', 'M', 'M'], ['F', 'F', 'M', 'M']]
    """
    if held_out < 1:
        raise ValueError(f"held_out must be at least 1, got {held_out}")
    n_speakers = len(genders)
    if n_speakers < 2:
        raise ValueError(
            f"speaker folds need at least 2 speakers, got {n_speakers}"
        )
    n_folds = min(n_speakers, max(2, round(n_speakers / held_out)))
    # One counter across all groups: fold sizes differ by at most one and
    # each gender, being contiguous in the order, is spread evenly too.
    order = [spk for group in _gender_groups(genders, seed) for spk in group]
    return {spk: str(i % n_folds + 1) for i, spk in enumerate(order)}


def speaker_split(genders, test=0.2, dev=0.1, seed=0):
    """Split speakers into train, dev and test, never sharing one.

    Speakers are ordered so that every prefix of the order holds each
    gender in proportion; test takes the first speakers, dev the next.

    Arguments
    ---------
    genders : dict
        Speaker id -> gender (``"M"``, ``"F"``, or ``""`` when unknown).
    test : float
        Fraction of speakers held out for test (at least 2 speakers, so
        that verification trials have non-target pairs).
    dev : float
        Fraction of speakers held out for dev (at least 1).
    seed : int
        The same speakers and seed always give the same split.

    Returns
    -------
    dict
        Speaker id -> ``"train"``, ``"dev"`` or ``"test"``.

    Example
    -------
    >>> genders = {f"s{i}": "MF"[i % 2] for i in range(10)}
    >>> split = speaker_split(genders, test=0.2, dev=0.2, seed=0)
    >>> [sum(v == k for v in split.values()) for k in ("train", "dev", "test")]
    [6, 2, 2]
    >>> sorted(genders[s] for s in split if split[s] == "test")
    ['F', 'M']
    """
    for name, value in (("test", test), ("dev", dev)):
        if not 0 < value < 1:
            raise ValueError(f"{name} fraction must be in (0, 1), got {value}")
    n_speakers = len(genders)
    n_test = max(2, round(test * n_speakers))
    n_dev = max(1, round(dev * n_speakers))
    if n_test + n_dev >= n_speakers:
        raise ValueError(
            f"{n_speakers} speakers cannot give {n_test} test, {n_dev} dev "
            "and at least one training speaker; a speaker-disjoint split "
            "needs at least 4 speakers"
        )
    # Rank within a gender group, as a fraction of the group: sorting on it
    # interleaves the groups in proportion to their sizes.
    keyed = []
    for g, group in enumerate(_gender_groups(genders, seed)):
        for rank, spk in enumerate(group):
            keyed.append(((rank + 0.5) / len(group), g, spk))
    order = [spk for _, _, spk in sorted(keyed)]
    split = {spk: "test" for spk in order[:n_test]}
    split.update({spk: "dev" for spk in order[n_test : n_test + n_dev]})
    split.update({spk: "train" for spk in order[n_test + n_dev :]})
    return split


def group_by(assignment):
    """Invert a speaker -> label assignment into label -> sorted speakers.

    Example
    -------
    >>> group_by({"b": "1", "a": "1", "c": "10", "d": "2"})
    {'1': ['a', 'b'], '2': ['d'], '10': ['c']}
    """
    groups = defaultdict(list)
    for spk, label in assignment.items():
        groups[label].append(spk)
    # Shorter labels first: numeric ones then sort by value ("2" before "10").
    labels = sorted(groups, key=lambda label: (len(label), label))
    return {label: sorted(groups[label]) for label in labels}
