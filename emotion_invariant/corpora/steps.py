"""What every preparation does once a corpus is parsed into rows.

In order, each step a function: check the rows (some, and no utterance
twice), assign speaker-independent folds and train/dev/test splits, warn
about speakers on several sides and utterances of no named speaker, leave
out columns the corpus never fills, list the speakers of each fold and
split, draw the emotional trials of the test speakers, summarise, and
write it all at once (:func:`finish`).
"""

import json
import logging
import os
from collections import Counter

from emotion_invariant.atomic import atomic_open, staged_files
from emotion_invariant.corpora.files import CorpusError
from emotion_invariant.corpora.record import SPLITS, outputs_of
from emotion_invariant.data.folds import (
    MIN_SPLIT_SPEAKERS,
    group_by,
    speaker_folds,
    speaker_split,
)
from emotion_invariant.data.manifest import (
    REQUIRED_COLUMNS,
    ManifestError,
    check_splits,
    validate_rows,
    write_manifest,
)
from emotion_invariant.data.trials import make_trials, write_trials

logger = logging.getLogger(__name__)

#: ``spk_id`` prefix of rows whose speaker the corpus does not name: each
#: such file gets its own pseudo-speaker, kept out of folds, splits and trials.
UNKNOWN_SPEAKER = "nospk-"


def known(spk):
    """Whether the corpus names this speaker (see :data:`UNKNOWN_SPEAKER`).

    Example
    -------
    >>> known("0011"), known(UNKNOWN_SPEAKER + "h1")
    (True, False)
    """
    return not spk.startswith(UNKNOWN_SPEAKER)


def sorted_rows(corpus, rows, data_folder):
    """The rows in ``ID`` order; refused when none, or an ID is twice.

    Example
    -------
    >>> rows = [{"ID": "a", "wav": "x/a.wav"}, {"ID": "a", "wav": "y/a.wav"}]
    >>> sorted_rows("demo", rows, "/c")
    Traceback (most recent call last):
    ...
    emotion_invariant.corpora.files.CorpusError: demo: utterance ID a occurs \
twice: x/a.wav and y/a.wav (is the corpus unpacked twice under the same \
folder?)
    """
    if not rows:
        raise CorpusError(
            f"{data_folder}: no usable utterance found for {corpus}; "
            "nothing written"
        )
    rows = sorted(rows, key=lambda row: row["ID"])
    for before, row in zip(rows, rows[1:]):
        if before["ID"] == row["ID"]:
            raise CorpusError(
                f"{corpus}: utterance ID {row['ID']} occurs twice: "
                f"{before['wav']} and {row['wav']} (is the corpus unpacked "
                "twice under the same folder?)"
            )
    return rows


def speaker_genders(rows):
    """Named speaker -> gender (the first one given, else ``""``).

    Example
    -------
    >>> speaker_genders([{"spk_id": "a", "gender": ""},
    ...                  {"spk_id": "a", "gender": "F"},
    ...                  {"spk_id": UNKNOWN_SPEAKER + "x"}])
    {'a': 'F'}
    """
    genders = {}
    for row in rows:
        if known(row["spk_id"]):
            gender = row.get("gender", "")
            if genders.get(row["spk_id"]) in (None, ""):
                genders[row["spk_id"]] = gender
    return genders


def assign_speakers(corpus, rows, genders, data_folder, plan, **draw):
    """Set each row's ``fold`` and ``split`` by its speaker.

    Fewer than :data:`~emotion_invariant.data.folds.MIN_SPLIT_SPEAKERS`
    speakers cannot give a speaker-disjoint train/dev/test split: they all
    go to test, with a warning.

    Arguments
    ---------
    corpus : str
        Corpus name, for messages.
    rows : list of dict
        The manifest rows.
    genders : dict
        Named speaker -> gender (see :func:`speaker_genders`).
    data_folder : str
        The corpus folder, for messages.
    plan : dict
        What the corpus fixes: ``fold_of``, ``split_of`` and ``presplit``
        as :func:`finish` takes them (each absent: not fixed; see
        :class:`emotion_invariant.corpora.base.Corpus`).
    **draw
        ``seed``, ``held_out``, ``test_fraction``, ``dev_fraction``: how
        :func:`finish` draws the folds and splits the corpus does not fix.

    Returns
    -------
    dict or False
        Speaker -> fold of the speakers present, ``{}`` or ``False`` for
        no folds.

    Example
    -------
    >>> rows = [{"spk_id": s} for s in "abcd"]
    >>> genders = dict.fromkeys("abcd", "")
    >>> draw = dict(seed=0, held_out=2, test_fraction=0.2, dev_fraction=0.1)
    >>> sorted(assign_speakers("demo", rows, genders, "/c", {}, **draw))
    ['a', 'b', 'c', 'd']
    >>> sorted(row["split"] for row in rows)
    ['dev', 'test', 'test', 'train']
    """
    fold_of = plan.get("fold_of")
    split_of = plan.get("split_of")
    presplit = plan.get("presplit", False)
    all_test = (
        split_of is None and not presplit and len(genders) < MIN_SPLIT_SPEAKERS
    )
    seed = draw["seed"]
    try:
        if fold_of is None:
            fold_of = speaker_folds(genders, draw["held_out"], seed)
        if all_test:
            split_of = dict.fromkeys(genders, "test")
        elif split_of is None and not presplit:
            split_of = speaker_split(
                genders, draw["test_fraction"], draw["dev_fraction"], seed
            )
    except ValueError as err:
        unnamed = sum(not known(row["spk_id"]) for row in rows)
        hint = f" ({unnamed} utterances name no speaker)" if unnamed else ""
        raise CorpusError(
            f"{data_folder}: cannot split {corpus} by speakers: {err}{hint}"
        ) from err
    if all_test:
        logger.warning(
            "%s: %d speakers cannot give a speaker-disjoint train/dev/test "
            "split (it needs at least %d speakers): all are in the test "
            "split, with a trial list over all of them (for zero-shot "
            "evaluation and clustering); no train or dev manifest",
            corpus,
            len(genders),
            MIN_SPLIT_SPEAKERS,
        )
    if fold_of:
        # A fixed assignment (IEMOCAP sessions) may name absent speakers.
        fold_of = {spk: f for spk, f in fold_of.items() if spk in genders}
    for row in rows:
        spk = row["spk_id"]
        if fold_of is not False:
            row["fold"] = fold_of.get(spk, "")
        if not presplit:
            row["split"] = split_of.get(spk, "")
    return fold_of


def shared_speakers(corpus, rows):
    """Named speakers in more than one split, with a warning when any.

    Example
    -------
    >>> shared_speakers("demo", [{"spk_id": "a", "split": "train"},
    ...                          {"spk_id": "a", "split": "test"}])
    ['a']
    """
    sides = {}
    for row in rows:
        if known(row["spk_id"]) and row.get("split"):
            sides.setdefault(row["spk_id"], set()).add(row["split"])
    overlap = sorted(spk for spk, s in sides.items() if len(s) > 1)
    if overlap:
        logger.warning(
            "%s: %d speaker(s) are in more than one split (e.g. %s): "
            "the split is not speaker-independent",
            corpus,
            len(overlap),
            overlap[0],
        )
    return overlap


def unknown_speakers(corpus, rows):
    """How many rows name no speaker, with a warning when any.

    Example
    -------
    >>> unknown_speakers("demo", [{"spk_id": "a"}])
    0
    """
    n_unknown = sum(not known(row["spk_id"]) for row in rows)
    if n_unknown:
        logger.warning(
            "%s: %d utterance(s) have no speaker in the corpus labels; "
            "each got its own spk_id '%s<ID>' and is kept out of folds, "
            "speaker splits and trials",
            corpus,
            n_unknown,
            UNKNOWN_SPEAKER,
        )
    return n_unknown


def drop_empty_columns(rows):
    """Leave out the optional columns that no row fills.

    A column the corpus could not fill anywhere (e.g. gender without the
    demographics file) is left out rather than written empty.

    Example
    -------
    >>> rows = [{"ID": "a", "gender": "", "text": "hi"}]
    >>> drop_empty_columns(rows)
    >>> rows
    [{'ID': 'a', 'text': 'hi'}]
    """
    empty = {
        key
        for key in rows[0]
        if key not in REQUIRED_COLUMNS + ("split", "fold")
        and not any(str(row.get(key, "")) for row in rows)
    }
    for row in rows:
        for key in empty:
            row.pop(key, None)


def speakers_by_split(corpus, rows, overlap):
    """Split -> its named speakers, checked when no speaker is shared.

    Example
    -------
    >>> rows = [{"ID": s, "spk_id": s, "split": p}
    ...         for s, p in zip("abc", ("train", "test", "test"))]
    >>> speakers_by_split("demo", rows, [])
    {'train': ['a'], 'test': ['b', 'c']}
    """
    splits = {
        name: sorted({r["spk_id"] for r in rows if r.get("split") == name})
        for name in SPLITS
    }
    splits = {k: [s for s in v if known(s)] for k, v in splits.items() if v}
    if not overlap:
        check_splits(splits, rows, f"{corpus} splits")
    return splits


def draw_trials(corpus, rows, seed=0, max_per_condition=None):
    """Emotional trials of the named test speakers; ``None`` under two.

    Example
    -------
    >>> rows = [{"ID": f"{s}{e}", "spk_id": s, "emo": e, "split": "test"}
    ...         for s in "ab" for e in ("neu", "ang")]
    >>> len(draw_trials("demo", rows)) > 0
    True
    >>> draw_trials("demo", rows[:2]) is None
    True
    """
    test_rows = [
        row
        for row in rows
        if row.get("split") == "test" and known(row["spk_id"])
    ]
    if len({row["spk_id"] for row in test_rows}) < 2:
        logger.info(
            "%s: no test split of two speakers or more: no trials", corpus
        )
        return None
    try:
        return make_trials(test_rows, seed, max_per_condition)
    except ManifestError as err:
        raise CorpusError(f"{corpus}: test split: {err}") from err


def summarize(rows, genders, splits, folds, overlap, n_unknown, problems):
    """The counts a preparation records: utterances, speakers, hours...

    Example
    -------
    >>> from emotion_invariant.corpora.files import Problems
    >>> rows = [{"spk_id": "a", "emo": "neu", "duration": 1800.0}] * 2
    >>> summary = summarize(rows, {"a": ""}, {"test": ["a"]}, {}, [], 0,
    ...                     Problems())
    >>> summary["hours"], summary["emotions"], summary["splits"]
    (1.0, {'neu': 2}, {'test': 1})
    """
    return {
        "utterances": len(rows),
        "speakers": len(genders),
        "hours": round(sum(float(r["duration"]) for r in rows) / 3600, 3),
        "emotions": dict(sorted(Counter(r["emo"] for r in rows).items())),
        "splits": {k: len(v) for k, v in splits.items()},
        "folds": len(folds),
        "speaker_overlap": len(overlap),
        "unknown_speaker_utterances": n_unknown,
        "skipped": problems.summary(),
    }


def write_outputs(corpus, save_folder, rows, folds, splits, trials, record):
    """Write manifests, folds, splits, trials and, last, the record.

    All of them appear together or, when anything fails, none does (see
    :func:`emotion_invariant.atomic.staged_files`).

    Arguments
    ---------
    corpus : str
        Corpus name (file prefix).
    save_folder : str
        Output folder.
    rows : list of dict
        The manifest rows, each with its ``split``.
    folds : dict
        What ``<corpus>_folds.json`` holds.
    splits : dict or None
        Split -> speakers; ``None`` when speakers are on several sides.
    trials : list or None
        The trial list, if any.
    record : dict
        ``settings``, ``content`` and ``summary`` of the run, for
        ``<corpus>_prepare.json``.

    Returns
    -------
    dict
        Role -> path of what was written.
    """
    paths = outputs_of(corpus, save_folder)
    for name in SPLITS:
        paths[name] = os.path.join(save_folder, f"{corpus}_{name}.csv")
    written = {"manifest": paths["manifest"], "folds": paths["folds"]}
    owned = [os.path.basename(path) for path in paths.values()]
    marker = os.path.basename(paths["prepare"])
    with staged_files(save_folder, marker, owned) as staging:

        def staged(role):
            return os.path.join(staging, os.path.basename(paths[role]))

        write_manifest(rows, staged("manifest"))
        for name in SPLITS:
            part = [row for row in rows if row.get("split") == name]
            if part:
                write_manifest(part, staged(name))
                written[name] = paths[name]
        with atomic_open(staged("folds")) as f:
            json.dump(folds, f, indent=1)
        if splits is not None:
            with atomic_open(staged("splits")) as f:
                json.dump(splits, f, indent=1)
            written["splits"] = paths["splits"]
        if trials is not None:
            write_trials(trials, staged("trials"))
            written["trials"] = paths["trials"]
        outputs = {k: os.path.basename(p) for k, p in written.items()}
        with atomic_open(staged("prepare")) as f:
            json.dump(
                {
                    "settings": record["settings"],
                    "content": record["content"],
                    "outputs": outputs,
                    "summary": record["summary"],
                },
                f,
                indent=1,
                ensure_ascii=False,
            )
    written["prepare"] = paths["prepare"]
    return written


def finish(
    corpus,
    rows,
    save_folder,
    settings,
    problems,
    seed=0,
    held_out=4,
    test_fraction=0.2,
    dev_fraction=0.1,
    max_per_condition=None,
    fold_of=None,
    split_of=None,
    presplit=False,
    content=None,
):
    """Assign folds and splits, then write manifest, folds, splits, trials.

    Writes ``<corpus>.csv`` (all rows, with ``fold`` and ``split``),
    ``<corpus>_<split>.csv`` per split, ``<corpus>_folds.json``,
    ``<corpus>_splits.json`` (split -> speakers, only when speakers are
    disjoint), ``<corpus>_trials.txt`` (from the test rows whose speaker is
    known) and, last, ``<corpus>_prepare.json`` (settings, outputs,
    counts), whose presence marks the run as finished. Everything that can
    fail is computed before anything is written, so a bad corpus leaves
    earlier outputs as they were.

    Arguments
    ---------
    corpus : str
        Corpus name (file prefix).
    rows : list of dict
        Manifest rows with durations.
    save_folder : str
        Output folder.
    settings : dict
        Settings identifying the run (see
        :func:`emotion_invariant.corpora.record.common_settings`).
    problems : emotion_invariant.corpora.files.Problems
        What was skipped on the way (recorded in the summary).
    seed : int
        Seed of folds, splits and trials.
    held_out : int
        Speakers per fold when ``fold_of`` is not given.
    test_fraction, dev_fraction : float
        Speaker fractions of the split when ``split_of`` is not given.
    max_per_condition : int, optional
        Cap on target (and non-target) trials per condition.
    fold_of : dict or False, optional
        Speaker -> fold label (e.g. IEMOCAP sessions); ``False`` for no
        folds; by default speaker folds of about ``held_out`` speakers.
    split_of : dict, optional
        Speaker -> split; by default a gender-balanced speaker split.
    presplit : bool
        The rows already carry ``split`` (an official or per-utterance
        split); speakers may then be on several sides, which is recorded.
    content : dict, optional
        What the corpus folder held (see
        :func:`emotion_invariant.corpora.record.folder_fingerprint`),
        recorded so that a later run can tell whether it changed.

    Returns
    -------
    dict
        Role -> path of what was written (see
        :func:`emotion_invariant.corpora.record.outputs_of`).

    Example
    -------
    >>> import tempfile
    >>> from emotion_invariant.corpora.files import Problems
    >>> rows = [{"ID": f"{s}{e}{i}", "wav": f"/c/{s}{e}{i}.wav",
    ...          "duration": 1.0, "spk_id": s, "emo": e, "gender": g}
    ...         for s, g in zip("abcdef", "MFMFMF")
    ...         for e in ("neu", "ang") for i in range(2)]
    >>> out = finish("demo", rows, tempfile.mkdtemp(), {"data_folder": "/c"},
    ...              Problems())
    >>> sorted(out)
    ['dev', 'folds', 'manifest', 'prepare', 'splits', 'test', 'train', 'trials']
    """
    data_folder = settings["data_folder"]
    rows = sorted_rows(corpus, rows, data_folder)
    genders = speaker_genders(rows)
    plan = {"fold_of": fold_of, "split_of": split_of, "presplit": presplit}
    fold_of = assign_speakers(
        corpus,
        rows,
        genders,
        data_folder,
        plan,
        seed=seed,
        held_out=held_out,
        test_fraction=test_fraction,
        dev_fraction=dev_fraction,
    )
    overlap = shared_speakers(corpus, rows)
    n_unknown = unknown_speakers(corpus, rows)
    drop_empty_columns(rows)
    validate_rows(rows, corpus, allow_empty_emo=False)
    folds = group_by(fold_of) if fold_of else {}
    splits = speakers_by_split(corpus, rows, overlap)
    trials = draw_trials(corpus, rows, seed, max_per_condition)
    folds_record = {
        "corpus": corpus,
        "seed": seed,
        "folds": folds,
        "speaker_overlap": bool(overlap),
        "unknown_speaker_utterances": n_unknown,
    }
    record = {
        "settings": settings,
        "content": content,
        "summary": summarize(
            rows, genders, splits, folds, overlap, n_unknown, problems
        ),
    }
    if overlap:  # not speaker-independent: no splits file
        splits = None
    written = write_outputs(
        corpus, save_folder, rows, folds_record, splits, trials, record
    )
    problems.log(corpus)
    logger.info(
        "%s: %d utterances, %d speakers, %.1f h -> %s",
        corpus,
        record["summary"]["utterances"],
        record["summary"]["speakers"],
        record["summary"]["hours"],
        written["manifest"],
    )
    return written
