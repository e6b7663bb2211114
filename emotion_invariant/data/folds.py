"""Speaker-independent folds and splits, balanced by gender.

Emotion benchmarks leak speakers when utterances, not speakers, are split
(random IEMOCAP splits; one published CREMA-D fold). Here every fold and
every train/dev/test split is a set of whole speakers, drawn
deterministically from a seed, with each gender spread evenly across
folds and splits.
"""

import itertools
import logging
import random
from collections import defaultdict

from emotion_invariant.data.manifest import (
    ManifestError,
)
from emotion_invariant.data.trials import NEUTRAL

logger = logging.getLogger(__name__)

#: The fewest speakers a train/dev/test split can take: two test speakers
#: (so that trials have non-target pairs), one dev, one training.
MIN_SPLIT_SPEAKERS = 4

#: The fewest dev speakers of a speaker-verification fold: its dev trials
#: select the checkpoints, and a non-target trial is of two speakers.
MIN_DEV_SPEAKERS = 2

#: The fewest training speakers a fold's split leaves.
MIN_TRAIN_SPEAKERS = 2


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


def _balanced_order(genders, seed):
    """Speakers in an order whose every prefix holds each gender in
    proportion: a speaker's rank within its gender, as a fraction of the
    gender's size, interleaves the groups."""
    keyed = []
    for g, group in enumerate(_gender_groups(genders, seed)):
        for rank, spk in enumerate(group):
            keyed.append(((rank + 0.5) / len(group), g, spk))
    return [spk for _, _, spk in sorted(keyed)]


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
            f"needs at least {MIN_SPLIT_SPEAKERS} speakers"
        )
    order = _balanced_order(genders, seed)
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


def fold_of_speakers(rows, n_folds=5, seed=0, source="<manifest>"):
    """Each speaker's fold: the manifest's ``fold`` column, else drawn.

    Arguments
    ---------
    rows : list of dict
        Manifest rows.
    n_folds : int
        Folds to draw (gender-balanced, by
        :func:`emotion_invariant.data.folds.speaker_folds`) when the rows
        have no ``fold`` column.
    seed : int
        Seed of drawn folds.
    source : str
        The manifest's name, for errors.

    Returns
    -------
    dict
        Speaker -> fold label; speakers with an empty fold (a corpus's
        unnamed speakers) are left out.

    Example
    -------
    >>> rows = [{"spk_id": s, "fold": f} for s, f in zip("abcd", "1122")]
    >>> fold_of_speakers(rows)
    {'a': '1', 'b': '1', 'c': '2', 'd': '2'}
    >>> rows = [{"spk_id": s, "gender": "m"} for s in "abcdef"]
    >>> sorted(fold_of_speakers(rows, n_folds=3).values())
    ['1', '1', '2', '2', '3', '3']
    """
    if all("fold" in row for row in rows):
        folds = {}
        for row in rows:
            spk, fold = row["spk_id"], str(row["fold"])
            if folds.setdefault(spk, fold) != fold:
                raise ManifestError(
                    f"{source}: speaker {spk!r} is in fold {folds[spk]!r} "
                    f"and in fold {fold!r} (ID {row['ID']})"
                )
        return {spk: fold for spk, fold in folds.items() if fold}
    genders = {row["spk_id"]: row.get("gender", "") for row in rows}
    if not 2 <= n_folds <= len(genders):
        raise ManifestError(
            f"{source}: cannot draw {n_folds} speaker folds from "
            f"{len(genders)} speakers"
        )
    return speaker_folds(genders, held_out=len(genders) / n_folds, seed=seed)


def fold_split(
    rows, fold_of, fold, dev_fraction=0.15, seed=0, source="<manifest>"
):
    """Rows of one fold's test speakers, dev speakers and training speakers.

    Arguments
    ---------
    rows : list of dict
        Manifest rows.
    fold_of : dict
        Speaker -> fold label (see :func:`fold_of_speakers`); rows of other
        speakers are left out.
    fold : str
        The test fold.
    dev_fraction : float
        Fraction of the other speakers held out for dev (at least one,
        drawn gender-balanced with ``seed``).
    seed : int
        Seed of the dev speakers.
    source : str
        The manifest's name, for errors.

    Returns
    -------
    dict
        ``{"train": rows, "dev": rows, "test": rows}``.

    Example
    -------
    >>> rows = [{"spk_id": s, "gender": ""} for s in "abcdef"]
    >>> fold_of = dict(zip("abcdef", "112233"))
    >>> parts = fold_split(rows, fold_of, "2")
    >>> [sorted({r["spk_id"] for r in parts[k]}) for k in ("test", "dev")]
    [['c', 'd'], ['e']]
    """
    fold = str(fold)
    folds = group_by(fold_of)
    if fold not in folds:
        raise ManifestError(
            f"{source}: fold {fold!r} does not exist; the folds are "
            + " ".join(folds)
        )
    others = sorted(spk for spk, f in fold_of.items() if f != fold)
    n_dev = max(1, round(dev_fraction * len(others)))
    if len(others) - n_dev < 2:
        raise ManifestError(
            f"{source}: fold {fold!r} leaves {len(others)} speakers for dev "
            f"and training; at least {n_dev + 2} are needed"
        )
    genders = {row["spk_id"]: row.get("gender", "") for row in rows}
    draw = speaker_folds({s: genders[s] for s in others}, n_dev, seed)
    role = {spk: "test" for spk in folds[fold]}
    role.update({s: "dev" if f == "1" else "train" for s, f in draw.items()})
    parts = {"train": [], "dev": [], "test": []}
    for row in rows:
        if row["spk_id"] in role:
            parts[role[row["spk_id"]]].append(row)
    return parts


def held_out_utterances(rows, fraction=0.15, seed=0):
    """Utterances of each speaker held out of training, for dev trials.

    About ``fraction`` of each speaker's utterances and at least two (a
    target pair), dealt over its emotions in turn, neutral first, so that
    the speakers' held-out utterances share emotion conditions (non-target
    pairs). A speaker with fewer than twice as many utterances gives none.

    Arguments
    ---------
    rows : list of dict
        Manifest rows (``ID``, ``spk_id``, ``emo``).
    fraction : float
        Share of each speaker's utterances to hold out.
    seed : int
        The same rows and seed always hold out the same utterances.

    Returns
    -------
    set of str
        The IDs held out.

    Example
    -------
    >>> rows = [{"ID": f"{s}{e}{i}", "spk_id": s, "emo": e}
    ...         for s in "ab" for e in ("ang", "neu") for i in range(3)]
    >>> sorted(held_out_utterances(rows, seed=1))
    ['aang2', 'aneu1', 'bang0', 'bneu0']
    """
    rng = random.Random(seed)
    by_speaker = defaultdict(lambda: defaultdict(list))
    for row in sorted(rows, key=lambda row: row["ID"]):
        by_speaker[row["spk_id"]][row.get("emo", "")].append(row["ID"])
    held = set()
    for spk in sorted(by_speaker):
        by_emotion = by_speaker[spk]
        count = sum(map(len, by_emotion.values()))
        n_held = max(2, round(fraction * count))
        if count < 2 * n_held:
            continue
        queues = []
        for emo in sorted(by_emotion, key=lambda emo: (emo != NEUTRAL, emo)):
            rng.shuffle(by_emotion[emo])
            queues.append(by_emotion[emo])
        dealt = itertools.chain.from_iterable(itertools.zip_longest(*queues))
        held.update(itertools.islice(filter(None, dealt), n_held))
    return held


def verification_split(
    rows, fold_of, fold, dev_fraction=0.15, seed=0, source="<manifest>"
):
    """:func:`fold_split`, with at least two dev speakers.

    A speaker-verification run selects its checkpoints by the EER of the
    dev speakers' trials, and a non-target trial is of two speakers. Where
    ``dev_fraction`` of the other speakers gives two dev speakers or more
    and leaves two or more to train, the split is :func:`fold_split`'s.
    Where it gives one (fewer than 10 other speakers at 0.15), or leaves
    fewer than two to train, the dev speakers are drawn gender-balanced
    from the other speakers, two or more and leaving two to train; with
    two or three other speakers, every one of them trains and dev is
    held-out utterances of each (:func:`held_out_utterances`): an EER on
    speakers seen in training, which still ranks the checkpoints but
    flatters them. A warning names the dev speakers and why. The fold's
    speakers are the test set either way.

    Arguments
    ---------
    rows, fold_of, fold, dev_fraction, seed, source
        As :func:`fold_split` takes them; with held-out utterances,
        ``dev_fraction`` is the share of each speaker's utterances.

    Returns
    -------
    dict
        As :func:`fold_split` gives it.

    Example
    -------
    >>> rows = [{"ID": f"{s}{i}", "spk_id": s, "emo": "neu", "gender": ""}
    ...         for s in "abcdef" for i in range(4)]
    >>> fold_of = dict(zip("abcdef", "112222"))
    >>> parts = verification_split(rows, fold_of, "1")
    >>> [sorted({r["spk_id"] for r in parts[k]}) for k in ("dev", "train")]
    [['c', 'e'], ['d', 'f']]
    """
    fold = str(fold)
    others = sorted(spk for spk, f in fold_of.items() if f != fold)
    n_dev = max(1, round(dev_fraction * len(others)))
    if fold not in fold_of.values() or (
        n_dev >= MIN_DEV_SPEAKERS and len(others) - n_dev >= MIN_TRAIN_SPEAKERS
    ):
        return fold_split(rows, fold_of, fold, dev_fraction, seed, source)
    if len(others) < MIN_TRAIN_SPEAKERS:
        raise ManifestError(
            f"{source}: fold {fold!r} leaves {len(others)} speaker(s) for "
            f"dev and training; at least {MIN_TRAIN_SPEAKERS} are needed"
        )
    genders = {row["spk_id"]: row.get("gender", "") for row in rows}
    parts = {"train": [], "dev": [], "test": []}
    if len(others) >= MIN_DEV_SPEAKERS + MIN_TRAIN_SPEAKERS:
        order = _balanced_order({spk: genders[spk] for spk in others}, seed)
        kept = min(
            max(n_dev, MIN_DEV_SPEAKERS), len(others) - MIN_TRAIN_SPEAKERS
        )
        dev = set(order[:kept])
        for row in rows:
            f = fold_of.get(row["spk_id"])
            if f is not None:
                role = "test" if f == fold else "train"
                parts["dev" if row["spk_id"] in dev else role].append(row)
        logger.warning(
            "%s: fold %s: a dev_fraction of %s of the %d other speakers "
            "gives %d dev speaker(s) and leaves %d to train, where the dev "
            "trials need %d (a non-target trial is of two speakers) and "
            "training %d: dev speakers %s, drawn from the other speakers "
            "(%d left to train)",
            source,
            fold,
            dev_fraction,
            len(others),
            n_dev,
            len(others) - n_dev,
            MIN_DEV_SPEAKERS,
            MIN_TRAIN_SPEAKERS,
            ", ".join(sorted(dev)),
            len(others) - len(dev),
        )
        return parts
    training = [row for row in rows if row["spk_id"] in others]
    held = held_out_utterances(training, dev_fraction, seed)
    dev = sorted({row["spk_id"] for row in training if row["ID"] in held})
    if len(dev) < MIN_DEV_SPEAKERS:
        raise ManifestError(
            f"{source}: fold {fold!r} leaves {len(others)} speakers for dev "
            "and training, too few for two dev speakers, and too few of "
            "their utterances to hold out for dev (at least 4 of each of "
            "two speakers)"
        )
    for row in rows:
        f = fold_of.get(row["spk_id"])
        if f == fold:
            parts["test"].append(row)
        elif f is not None:
            parts["dev" if row["ID"] in held else "train"].append(row)
    logger.warning(
        "%s: fold %s: the %d other speakers cannot give %d dev and %d "
        "training speakers: dev is %d held-out utterances of the training "
        "speakers %s; its EER, on speakers seen in training, ranks the "
        "checkpoints but flatters them",
        source,
        fold,
        len(others),
        MIN_DEV_SPEAKERS,
        MIN_TRAIN_SPEAKERS,
        len(held),
        ", ".join(dev),
    )
    return parts


def check_speaker_independent(parts, sources=None):
    """Fail unless the test speakers are absent from training and dev.

    Arguments
    ---------
    parts : dict
        ``"train"``, ``"dev"`` and ``"test"`` -> manifest rows.
    sources : dict, optional
        The same keys -> file names, for the error message.

    Example
    -------
    >>> parts = {"train": [{"spk_id": "a"}], "dev": [{"spk_id": "b"}],
    ...          "test": [{"spk_id": "a"}]}
    >>> check_speaker_independent(parts)
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: speaker(s) a of test \
are in train too: results would not be speaker-independent
    """
    sources = sources or {}
    test = {row["spk_id"] for row in parts["test"]}
    for name in ("train", "dev"):
        shared = sorted(test & {row["spk_id"] for row in parts[name]})
        if shared:
            where = " and ".join(
                sources[k] for k in ("test", name) if k in sources
            )
            raise ManifestError(
                (f"{where}: " if where else "")
                + f"speaker(s) {' '.join(shared[:5])}"
                + (f" and {len(shared) - 5} more" if len(shared) > 5 else "")
                + f" of test are in {name} too: results would not be "
                "speaker-independent"
            )


#: Split name -> the yaml key (``<key>_annotation``) of its manifest.
ROLES = {"train": "train", "dev": "valid", "test": "test"}


def check_held_out(rows, held_out, source="<manifest>", held_source="<held>"):
    """Fail if a pretraining utterance is of a held-out speaker.

    Arguments
    ---------
    rows : list of dict
        Pretraining rows.
    held_out : list of dict
        Rows of the speakers emotion recognition is tested on.
    source, held_source : str
        The two manifests' names, for the error.

    Example
    -------
    >>> check_held_out([{"spk_id": "a"}], [{"spk_id": "b"}])
    >>> check_held_out([{"spk_id": "a"}], [{"spk_id": "a"}], "p.csv", "t.csv")
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: p.csv: speaker(s) a of \
the held-out t.csv are in pretraining: emotion results on them would not \
be speaker-independent
    """
    shared = sorted(
        {row["spk_id"] for row in rows} & {row["spk_id"] for row in held_out}
    )
    if shared:
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        raise ManifestError(
            f"{source}: speaker(s) {' '.join(shared[:5])}{more} of the "
            f"held-out {held_source} are in pretraining: emotion results on "
            "them would not be speaker-independent"
        )
