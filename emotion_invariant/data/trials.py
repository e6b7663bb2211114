"""Emotional verification trial lists.

Builds SpeechBrain-format trials (``label enrol_id test_id condition``) from a
manifest, balanced in target and non-target trials within every emotion
condition: ``N-N``, ``N-E``, ``E-E same``, ``E-E cross`` and each emotion
against neutral. The ``condition`` field is always ``<enrol emo>-<test emo>``;
:func:`condition_groups` maps it to the groups reported everywhere.

Command line::

    python -m emotion_invariant.data.trials MANIFEST OUT [--seed S]
        [--max-per-condition N]
"""

import argparse
import random
import sys
from collections import defaultdict

from emotion_invariant.atomic import atomic_open
from emotion_invariant.data.manifest import ManifestError, read_manifest
from emotion_invariant.messages import os_error_message

NEUTRAL = "neu"
GROUPS = ("N-N", "N-E", "E-E same", "E-E cross")


def condition_groups(condition):
    """The report groups a trial condition belongs to.

    Arguments
    ---------
    condition : str
        ``<enrol emotion>-<test emotion>``, e.g. ``neu-ang``.

    Returns
    -------
    list of str
        One of ``N-N``, ``N-E``, ``E-E same``, ``E-E cross`` and, for a
        neutral enrolment against an emotional test, the condition itself.

    Example
    -------
    >>> condition_groups("neu-ang")
    ['N-E', 'neu-ang']
    >>> condition_groups("sad-sad")
    ['E-E same']
    >>> condition_groups("ang-neu")
    ['E-N']
    """
    enrol, _, test = condition.partition("-")
    if not test:
        raise ValueError(f"condition {condition!r} is not <enrol>-<test>")
    if enrol == NEUTRAL and test == NEUTRAL:
        return ["N-N"]
    if enrol == NEUTRAL:
        return ["N-E", condition]
    if test == NEUTRAL:
        return ["E-N"]
    return ["E-E same"] if enrol == test else ["E-E cross"]


def _pair_key(enrol_emo, test_emo):
    """The balancing cell of an (enrol, test) emotion pair."""
    if enrol_emo == NEUTRAL and test_emo == NEUTRAL:
        return "N-N"
    if enrol_emo == NEUTRAL:
        return f"neu-{test_emo}"
    if test_emo == NEUTRAL:
        return None  # emotional enrolment against neutral test: not a group
    return "E-E same" if enrol_emo == test_emo else "E-E cross"


def make_trials(rows, seed=0, max_per_condition=None):
    """Balanced emotional trials from manifest rows.

    Every cell (``N-N``, each ``neu-X``, ``E-E same``, ``E-E cross``) gets
    the same number of target and non-target trials: as many as the scarcer
    kind allows, capped by ``max_per_condition`` per kind. An utterance is
    never paired with itself and no (enrol, test) pair appears twice.

    Arguments
    ---------
    rows : list of dict
        Manifest rows with ``ID``, ``spk_id`` and ``emo``.
    seed : int
        Seed for sampling; the same rows and seed give the same list.
    max_per_condition : int, optional
        Cap on target (and on non-target) trials per cell.

    Returns
    -------
    list of tuple
        ``(label, enrol_id, test_id, condition)`` with label 1 or 0.

    Example
    -------
    >>> rows = [{"ID": f"{s}_{e}_{i}", "spk_id": s, "emo": e}
    ...         for s in "ab" for e in ("neu", "ang") for i in range(2)]
    >>> trials = make_trials(rows, seed=1)
    >>> sorted({t[3] for t in trials})
    ['ang-ang', 'neu-ang', 'neu-neu']
    >>> all(t[1] != t[2] for t in trials)
    True
    """
    rows = [r for r in rows if r.get("emo")]
    if not rows:
        raise ManifestError("no labelled rows to build trials from")
    rng = random.Random(seed)
    by_emo = defaultdict(list)
    by_spk_emo = defaultdict(list)
    for row in sorted(rows, key=lambda r: r["ID"]):
        by_emo[row["emo"]].append(row)
        by_spk_emo[row["spk_id"], row["emo"]].append(row["ID"])
    speakers = sorted({r["spk_id"] for r in rows})
    emotions = sorted(by_emo)

    # Targets are enumerated (they grow with utterances per speaker only);
    # non-targets are sampled, since enumerating them is quadratic in the
    # whole test set.
    cells = defaultdict(list)  # key -> [(enrol_emo, test_emo, targets)]
    for enrol_emo in emotions:
        for test_emo in emotions:
            key = _pair_key(enrol_emo, test_emo)
            if key is None:
                continue
            cond = f"{enrol_emo}-{test_emo}"
            targets = [
                (enrol, test, cond)
                for spk in speakers
                for enrol in by_spk_emo.get((spk, enrol_emo), ())
                for test in by_spk_emo.get((spk, test_emo), ())
                if enrol != test
            ]
            cells[key].append((enrol_emo, test_emo, targets))

    trials = []
    for key in sorted(cells):
        targets = [t for _, _, pool in cells[key] for t in pool]
        count = len(targets)
        if max_per_condition is not None:
            count = min(count, max_per_condition)
        nontargets = _sample_nontargets(rng, by_emo, cells[key], count)
        count = min(count, len(nontargets))
        for enrol, test, cond in rng.sample(targets, count):
            trials.append((1, enrol, test, cond))
        for enrol, test, cond in nontargets[:count]:
            trials.append((0, enrol, test, cond))
    if not trials:
        raise ManifestError("no trials could be built: " + _missing(by_spk_emo))
    return trials


def dev_trials(rows, max_per_condition=None, source="<dev manifest>"):
    """The dev speakers' trials, by which training keeps its best checkpoint.

    :func:`make_trials` with seed 0; an error says that the dev speakers
    are there to select the checkpoint by verification EER.

    Example
    -------
    >>> dev_trials([{"ID": "a", "spk_id": "s", "emo": "neu"}], 5, "dev.csv")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: dev.csv: the dev \
speakers select the best checkpoint by verification EER: ...
    """
    try:
        return make_trials(rows, seed=0, max_per_condition=max_per_condition)
    except ManifestError as err:
        raise ManifestError(
            f"{source}: the dev speakers select the best checkpoint by "
            f"verification EER: {err}"
        ) from err


def _missing(by_spk_emo, shown=8):
    """Why rows give no trial, and the emotions of each speaker.

    Example
    -------
    >>> _missing({("a", "neu"): ["a1", "a2"], ("b", "ang"): ["b1", "b2"]})
    'every condition needs a target pair (two utterances of one speaker) \
and a non-target pair (two speakers) in the same emotions; emotions by \
speaker: a neu; b ang'
    """
    emotions = defaultdict(list)
    for spk, emo in sorted(by_spk_emo):
        emotions[spk].append(emo)
    if len(emotions) < 2:
        reason = "non-target trials need two speakers, and there is one"
    else:
        reason = (
            "every condition needs a target pair (two utterances of one "
            "speaker) and a non-target pair (two speakers) in the same "
            "emotions"
        )
    listed = [f"{spk} {' '.join(emos)}" for spk, emos in emotions.items()]
    more = f"; ... ({len(listed)} speakers)" if len(listed) > shown else ""
    return f"{reason}; emotions by speaker: {'; '.join(listed[:shown])}{more}"


def _sample_nontargets(rng, by_emo, pairs, count):
    """Distinct cross-speaker pairs, spread over emotion pairs like targets."""
    if count == 0:
        return []
    weights = [len(pool) for _, _, pool in pairs]
    chosen, seen = [], set()
    attempts = 0
    # Bounded rejection sampling: a cell with too few speakers to fill its
    # quota gives up and is balanced down to what it found.
    while len(chosen) < count and attempts < 50 * count + 1000:
        attempts += 1
        enrol_emo, test_emo, _ = rng.choices(pairs, weights)[0]
        enrol = rng.choice(by_emo[enrol_emo])
        test = rng.choice(by_emo[test_emo])
        key = (enrol["ID"], test["ID"])
        if enrol["spk_id"] == test["spk_id"] or key in seen:
            continue
        seen.add(key)
        chosen.append((enrol["ID"], test["ID"], f"{enrol_emo}-{test_emo}"))
    return chosen


def write_trials(trials, path):
    """Write trials, one ``label enrol test condition`` a line, atomically.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "trials.txt")
    >>> write_trials([(1, "a", "b", "neu-ang")], path)
    >>> open(path).read()
    '1 a b neu-ang\\n'
    """
    with atomic_open(path) as f:
        for trial in trials:
            f.write(" ".join(str(x) for x in trial) + "\n")


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.data.trials",
        description="Write a balanced emotional trial list from a manifest.",
    )
    parser.add_argument("manifest", help="manifest CSV (ID,duration,wav,...)")
    parser.add_argument("out", help="trial list to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-per-condition", type=int, default=None)
    args = parser.parse_args(argv)
    if args.max_per_condition is not None and args.max_per_condition < 1:
        parser.error("--max-per-condition must be at least 1")
    try:
        rows = read_manifest(args.manifest)
        trials = make_trials(rows, args.seed, args.max_per_condition)
        write_trials(trials, args.out)
    except ManifestError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        return 1
    counts = defaultdict(int)
    for label, _, _, cond in trials:
        counts[(cond, label)] += 1
    print(f"wrote {len(trials)} trials to {args.out}")
    for cond in sorted({c for c, _ in counts}):
        print(
            f"  {cond:10s} target {counts[(cond, 1)]:6d}  "
            f"non-target {counts[(cond, 0)]:6d}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
