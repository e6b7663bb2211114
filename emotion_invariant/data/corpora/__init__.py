"""Shared machinery that turns a downloaded emotional corpus into manifests.

Each corpus module parses its own layout into rows; everything after that
is common and follows SpeechBrain's data-preparation idiom: check that the
folder is the corpus root (and say where it probably is when it is not),
read durations from file headers only, assign speaker-independent folds
and splits, write the manifest, folds and emotional trial list atomically,
and skip all of it when the saved options and the folder's content say
the work is already done.
"""

import functools
import hashlib
import inspect
import json
import logging
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import soundfile
from tqdm import tqdm

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
from emotion_invariant.utils import atomic_open, staged_files

logger = logging.getLogger(__name__)

#: ``spk_id`` prefix of rows whose speaker the corpus does not name: each
#: such file gets its own pseudo-speaker, kept out of folds, splits and trials.
UNKNOWN_SPEAKER = "nospk-"
SPLITS = ("train", "dev", "test")
_FORMAT_VERSION = 1


class CorpusError(ManifestError):
    """A corpus folder, file name or label file that is not as distributed.

    Example
    -------
    >>> issubclass(CorpusError, ManifestError)
    True
    """


def listdir(folder):
    """Sorted entries of ``folder``, without hidden ones (``.DS_Store``...).

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name in ("b", "a", ".hidden"):
    ...     open(os.path.join(d, name), "w").close()
    >>> listdir(d)
    ['a', 'b']
    """
    return sorted(n for n in os.listdir(folder) if not n.startswith("."))


def subdirs(folder, pattern=None):
    """Sorted visible sub-folders of ``folder``, optionally matching a regex.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> for name in ("Actor_01", "Actor_02", "notes"):
    ...     os.mkdir(os.path.join(d, name))
    >>> subdirs(d, r"Actor_\\d\\d")
    ['Actor_01', 'Actor_02']
    """
    if not os.path.isdir(folder):
        return []
    regex = re.compile(pattern) if pattern else None
    return [
        name
        for name in listdir(folder)
        if os.path.isdir(os.path.join(folder, name))
        and (regex is None or regex.fullmatch(name))
    ]


def find_root(data_folder, looks_right, expected, max_depth=3):
    """Check that ``data_folder`` is the corpus root, else say where it is.

    Arguments
    ---------
    data_folder : str
        The folder the user gave.
    looks_right : callable
        ``folder -> bool``: whether a folder is the corpus root.
    expected : str
        What the root should hold, for error messages.
    max_depth : int
        How many levels up and down to look for the real root.

    Returns
    -------
    str
        The absolute path of the root.

    Raises
    ------
    CorpusError
        Missing, empty or wrong folder; when the root is found above or
        below, the message says ``did you mean <path>?``.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(d, "corpus", "wav"))
    >>> is_root = lambda f: os.path.isdir(os.path.join(f, "wav"))
    >>> find_root(d, is_root, "a wav/ folder")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.data.corpora.CorpusError: ... did you mean .../corpus?
    """
    folder = os.path.abspath(data_folder)
    if not os.path.exists(folder):
        raise CorpusError(f"{folder}: no such folder; expected {expected}")
    if not os.path.isdir(folder):
        raise CorpusError(
            f"{folder} is a file, not a folder; expected {expected}"
        )
    if not listdir(folder):
        raise CorpusError(f"{folder} is empty; expected {expected}")
    if looks_right(folder):
        return folder
    parent = folder
    for _ in range(max_depth):
        parent = os.path.dirname(parent)
        if looks_right(parent):
            raise CorpusError(
                f"{folder} is inside the corpus, not its root (expected "
                f"{expected}); did you mean {parent}?"
            )
    level, visited = [folder], 0
    for _ in range(max_depth):
        below = []
        for current in level:
            for name in subdirs(current):
                path = os.path.join(current, name)
                if looks_right(path):
                    raise CorpusError(
                        f"{folder} holds the corpus one level or more down "
                        f"(expected {expected}); did you mean {path}?"
                    )
                below.append(path)
                visited += 1
        # Bounded: a huge unrelated tree must not be crawled for a hint.
        if visited > 5000:
            break
        level = below
    raise CorpusError(
        f"{folder} does not look like the corpus: expected {expected}"
    )


class Problems:
    """Bad inputs: raise at the first one, or skip them and count them.

    Arguments
    ---------
    skip_bad : bool
        Skip bad files (counted and logged) instead of stopping.

    Example
    -------
    >>> problems = Problems(skip_bad=True)
    >>> problems("unexpected file name", "x/bad.wav: expected NNNN_NNNNNN.wav")
    >>> problems.summary()["unexpected file name"]["count"]
    1
    >>> Problems(skip_bad=False)("unexpected file name", "x/bad.wav: ...")
    Traceback (most recent call last):
    ...
    emotion_invariant.data.corpora.CorpusError: x/bad.wav: ...
    """

    def __init__(self, skip_bad=False):
        self.skip_bad = skip_bad
        self.counts = Counter()
        self.examples = {}

    def __call__(self, kind, message):
        """Record one problem of a kind; raise unless skipping."""
        if not self.skip_bad:
            raise CorpusError(
                message + " (--skip-bad, or skip_bad=True, skips such files)"
            )
        self.counts[kind] += 1
        self.examples.setdefault(kind, [])
        if len(self.examples[kind]) < 5:
            self.examples[kind].append(message)

    def summary(self):
        """Kind -> ``{"count": n, "examples": [first messages]}``."""
        return {
            kind: {"count": n, "examples": self.examples[kind]}
            for kind, n in sorted(self.counts.items())
        }

    def log(self, corpus):
        """Warn once per kind of skipped file, with a count and an example."""
        for kind, n in sorted(self.counts.items()):
            logger.warning(
                "%s: skipped %d file(s): %s (first: %s)",
                corpus,
                n,
                kind,
                self.examples[kind][0],
            )


def read_text(path):
    """Read a small text file whatever its encoding (UTF-8/16 or GB18030).

    Corpora from several labs ship transcripts in several encodings.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "t.txt")
    >>> with open(path, "wb") as f:
    ...     _ = f.write("0001_000001\\t你好\\n".encode("gb18030"))
    >>> read_text(path).split("\\t")[1].strip()
    '你好'
    """
    with open(path, "rb") as f:
        data = f.read()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def _header(path):
    """Duration in seconds from an audio header, or an error message."""
    try:
        info = soundfile.info(path)
    except Exception as err:  # libsndfile raises several types
        reason = f"unreadable audio file {path}: {err}"
        try:
            with open(path, "rb") as f:
                if f.read(24).startswith(b"version https://git-lfs"):
                    reason = (
                        f"{path} is a Git LFS pointer, not audio: fetch the "
                        "audio with `git lfs pull` in the corpus repository"
                    )
        except OSError:
            pass
        return None, reason
    if info.frames == 0 or info.samplerate <= 0:
        return None, f"empty audio file {path}"
    return info.frames / info.samplerate, None


def add_durations(rows, problems, jobs=1, desc="reading headers"):
    """Set ``duration`` on every row from its audio header (not decoding).

    Arguments
    ---------
    rows : list of dict
        Rows with ``wav`` (an existing path) and ``ID``.
    problems : Problems
        Unreadable or empty files go here (raise, or skip and count).
    jobs : int
        Threads reading headers (helps on network file systems).
    desc : str
        Label of the progress bar.

    Returns
    -------
    list of dict
        The rows whose audio is readable, with ``duration`` set.

    Example
    -------
    >>> import tempfile, os, numpy, soundfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.wav")
    >>> soundfile.write(path, numpy.zeros(8000), 16000)
    >>> add_durations([{"ID": "a", "wav": path}], Problems())[0]["duration"]
    0.5
    """
    paths = [row["wav"] for row in rows]
    bar = dict(total=len(paths), desc=desc, unit="file", disable=None)
    if jobs > 1:
        with ThreadPoolExecutor(jobs) as pool:
            results = list(tqdm(pool.map(_header, paths), **bar))
    else:
        results = [_header(path) for path in tqdm(paths, **bar)]
    kept = []
    for row, (duration, error) in zip(rows, results):
        if error is not None:
            problems("unreadable audio", f"ID {row['ID']}: {error}")
            continue
        row["duration"] = duration
        kept.append(row)
    return kept


def common_settings(data_folder, **options):
    """The settings a preparation is identified by (to skip repeated work).

    Example
    -------
    >>> common_settings("/data/esd", seed=1)["seed"]
    1
    """
    return {
        "data_folder": os.path.realpath(data_folder),
        "format": _FORMAT_VERSION,
        **options,
    }


def folder_fingerprint(folder, exclude=()):
    """What a corpus folder holds, cheaply: its files' paths and sizes.

    No file is opened and modification times are ignored (a copy made
    with ``cp -r`` is the same corpus), so the cost is one ``stat`` per
    file. Hidden entries are left out, and so are the paths of
    ``exclude``. Symbolic links are followed, each real folder once.

    Arguments
    ---------
    folder : str
        The corpus folder.
    exclude : iterable of str
        Files and folders under ``folder`` to leave out.

    Returns
    -------
    dict
        ``files`` (how many), ``bytes`` (their total size) and ``sha256``
        (of the sorted list of relative paths and sizes).

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "a.wav"), "wb").write(b"1234")
    >>> before = folder_fingerprint(d)
    >>> before["files"], before["bytes"]
    (1, 4)
    >>> _ = open(os.path.join(d, "a.wav"), "ab").write(b"5")
    >>> folder_fingerprint(d) == before
    False
    """
    root = os.path.realpath(folder)
    # Entries are met as <real folder>/<name>: match both forms.
    skip = {os.path.realpath(path) for path in exclude}
    skip |= {
        os.path.join(
            os.path.realpath(os.path.dirname(path)), os.path.basename(path)
        )
        for path in exclude
    }
    entries, seen, stack = [], {root}, [("", root)]
    while stack:
        rel, current = stack.pop()
        try:
            with os.scandir(current) as scan:
                items = [e for e in scan if not e.name.startswith(".")]
        except OSError:
            entries.append((rel + "/", -1))  # unreadable: counted as such
            continue
        for entry in items:
            path = f"{rel}/{entry.name}" if rel else entry.name
            if entry.path in skip:
                continue
            if entry.is_dir():
                real = os.path.realpath(entry.path)
                if real not in seen and real not in skip:
                    seen.add(real)
                    stack.append((path, real))
                continue
            try:
                size = entry.stat().st_size
            except OSError:  # a broken link
                size = -1
            entries.append((path, size))
    entries.sort()
    digest = hashlib.sha256()
    for path, size in entries:
        digest.update(f"{path}\t{size}\n".encode("utf-8", "surrogateescape"))
    return {
        "files": len(entries),
        "bytes": sum(max(size, 0) for _, size in entries),
        "sha256": digest.hexdigest(),
    }


def corpus_content(corpus, data_folder, save_folder):
    """:func:`folder_fingerprint` of a corpus, less what preparing it wrote.

    The outputs of ``corpus`` in ``save_folder`` (and that folder) are left
    out, so preparing a corpus into its own folder does not change it.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> _ = open(os.path.join(d, "a.wav"), "wb").write(b"1234")
    >>> before = corpus_content("esd", d, d)
    >>> _ = open(os.path.join(d, "esd_train.csv"), "w").write("ID")
    >>> corpus_content("esd", d, d) == before
    True
    """
    outputs = outputs_of(corpus, save_folder).values()
    splits = [os.path.join(save_folder, f"{corpus}_{n}.csv") for n in SPLITS]
    return folder_fingerprint(data_folder, [save_folder, *outputs, *splits])


def _prepare_json(save_folder, corpus):
    return os.path.join(save_folder, f"{corpus}_prepare.json")


def already_prepared(corpus, save_folder, settings, data_folder=None):
    """Whether ``save_folder`` holds a finished run of the same settings.

    Arguments
    ---------
    corpus : str
        Corpus name (file prefix).
    save_folder : str
        Where the outputs are.
    settings : dict
        The settings of the run about to start.
    data_folder : str, optional
        The corpus folder: the finished run must also have been made from
        what it holds now (see :func:`folder_fingerprint`).

    Returns
    -------
    bool

    Example
    -------
    >>> import tempfile
    >>> already_prepared("esd", tempfile.mkdtemp(), {"seed": 0})
    False
    """
    path = _prepare_json(save_folder, corpus)
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, json.JSONDecodeError):
        return False
    if not isinstance(saved, dict) or saved.get("settings") != settings:
        return False
    outputs = saved.get("outputs")
    if not isinstance(outputs, dict) or not all(
        os.path.isfile(os.path.join(save_folder, name))
        for name in outputs.values()
    ):
        return False
    # Looked at last: it costs a stat of every file of the corpus.
    return data_folder is None or saved.get("content") == corpus_content(
        corpus, data_folder, save_folder
    )


def outputs_of(corpus, save_folder):
    """Paths of everything a finished preparation wrote, by role.

    Example
    -------
    >>> sorted(outputs_of("esd", "out"))
    ['folds', 'manifest', 'prepare', 'splits', 'trials']
    """
    return {
        "manifest": os.path.join(save_folder, f"{corpus}.csv"),
        "folds": os.path.join(save_folder, f"{corpus}_folds.json"),
        "splits": os.path.join(save_folder, f"{corpus}_splits.json"),
        "trials": os.path.join(save_folder, f"{corpus}_trials.txt"),
        "prepare": _prepare_json(save_folder, corpus),
    }


def _known(spk):
    return not spk.startswith(UNKNOWN_SPEAKER)


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
    counts), whose presence marks the run as finished. All of them appear
    together or, when anything fails, none does (see
    :func:`emotion_invariant.utils.staged_files`).

    Fewer than 4 speakers cannot give a speaker-disjoint train/dev/test
    split: they all go to test, with a warning, so that the manifest and
    trial list still serve zero-shot evaluation and clustering.

    Arguments
    ---------
    corpus : str
        Corpus name (file prefix).
    rows : list of dict
        Manifest rows with durations.
    save_folder : str
        Output folder.
    settings : dict
        Settings identifying the run (see :func:`common_settings`).
    problems : Problems
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
        What the corpus folder held (see :func:`folder_fingerprint`),
        recorded so that a later run can tell whether it changed.

    Returns
    -------
    dict
        Role -> path of what was written (see :func:`outputs_of`).

    Example
    -------
    >>> import tempfile
    >>> rows = [{"ID": f"{s}{e}{i}", "wav": f"/c/{s}{e}{i}.wav",
    ...          "duration": 1.0, "spk_id": s, "emo": e, "gender": g}
    ...         for s, g in zip("abcdef", "MFMFMF")
    ...         for e in ("neu", "ang") for i in range(2)]
    >>> out = finish("demo", rows, tempfile.mkdtemp(), {"data_folder": "/c"},
    ...              Problems())
    >>> sorted(out)
    ['dev', 'folds', 'manifest', 'prepare', 'splits', 'test', 'train', 'trials']
    """
    if not rows:
        raise CorpusError(
            f"{settings['data_folder']}: no usable utterance found "
            f"for {corpus}; nothing written"
        )
    rows = sorted(rows, key=lambda row: row["ID"])
    for before, row in zip(rows, rows[1:]):
        if before["ID"] == row["ID"]:
            raise CorpusError(
                f"{corpus}: utterance ID {row['ID']} occurs twice: "
                f"{before['wav']} and {row['wav']} (is the corpus unpacked "
                "twice under the same folder?)"
            )
    genders = {}
    for row in rows:
        if _known(row["spk_id"]):
            gender = row.get("gender", "")
            if genders.get(row["spk_id"]) in (None, ""):
                genders[row["spk_id"]] = gender
    all_test = (
        split_of is None and not presplit and len(genders) < MIN_SPLIT_SPEAKERS
    )
    try:
        if fold_of is None:
            fold_of = speaker_folds(genders, held_out, seed)
        if all_test:
            split_of = dict.fromkeys(genders, "test")
        elif split_of is None and not presplit:
            split_of = speaker_split(genders, test_fraction, dev_fraction, seed)
    except ValueError as err:
        unnamed = sum(not _known(row["spk_id"]) for row in rows)
        hint = f" ({unnamed} utterances name no speaker)" if unnamed else ""
        raise CorpusError(
            f"{settings['data_folder']}: cannot split {corpus} by speakers: "
            f"{err}{hint}"
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

    sides = {}
    for row in rows:
        if _known(row["spk_id"]) and row.get("split"):
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
    n_unknown = sum(not _known(row["spk_id"]) for row in rows)
    if n_unknown:
        logger.warning(
            "%s: %d utterance(s) have no speaker in the corpus labels; "
            "each got its own spk_id '%s<ID>' and is kept out of folds, "
            "speaker splits and trials",
            corpus,
            n_unknown,
            UNKNOWN_SPEAKER,
        )

    # A column the corpus could not fill anywhere (e.g. gender without the
    # demographics file) is left out rather than written empty.
    empty = {
        key
        for key in rows[0]
        if key not in REQUIRED_COLUMNS + ("split", "fold")
        and not any(str(row.get(key, "")) for row in rows)
    }
    for row in rows:
        for key in empty:
            row.pop(key, None)

    # Everything that can fail is computed before anything is written, so
    # a bad corpus leaves earlier outputs as they were.
    validate_rows(rows, corpus, allow_empty_emo=False)
    folds = group_by(fold_of) if fold_of else {}
    splits = {
        name: sorted({r["spk_id"] for r in rows if r.get("split") == name})
        for name in SPLITS
    }
    splits = {k: [s for s in v if _known(s)] for k, v in splits.items() if v}
    if not overlap:
        check_splits(splits, rows, f"{corpus} splits")
    test_rows = [
        row
        for row in rows
        if row.get("split") == "test" and _known(row["spk_id"])
    ]
    trials = None
    if len({row["spk_id"] for row in test_rows}) >= 2:
        try:
            trials = make_trials(test_rows, seed, max_per_condition)
        except ManifestError as err:
            raise CorpusError(f"{corpus}: test split: {err}") from err
    else:
        logger.info(
            "%s: no test split of two speakers or more: no trials", corpus
        )

    summary = {
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
            json.dump(
                {
                    "corpus": corpus,
                    "seed": seed,
                    "folds": folds,
                    "speaker_overlap": bool(overlap),
                    "unknown_speaker_utterances": n_unknown,
                },
                f,
                indent=1,
            )
        if not overlap:
            with atomic_open(staged("splits")) as f:
                json.dump(splits, f, indent=1)
            written["splits"] = paths["splits"]
        if trials is not None:
            write_trials(trials, staged("trials"))
            written["trials"] = paths["trials"]
        with atomic_open(staged("prepare")) as f:
            json.dump(
                {
                    "settings": settings,
                    "content": content,
                    "outputs": {
                        k: os.path.basename(p) for k, p in written.items()
                    },
                    "summary": summary,
                },
                f,
                indent=1,
                ensure_ascii=False,
            )
    written["prepare"] = paths["prepare"]
    problems.log(corpus)
    logger.info(
        "%s: %d utterances, %d speakers, %.1f h -> %s",
        corpus,
        summary["utterances"],
        summary["speakers"],
        summary["hours"],
        paths["manifest"],
    )
    return written


def saved_outputs(corpus, save_folder):
    """Role -> path of the outputs a finished run recorded.

    Example
    -------
    >>> import tempfile
    >>> saved_outputs("esd", tempfile.mkdtemp())
    {}
    """
    try:
        with open(_prepare_json(save_folder, corpus)) as f:
            outputs = json.load(f)["outputs"]
        result = {k: os.path.join(save_folder, n) for k, n in outputs.items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    result["prepare"] = _prepare_json(save_folder, corpus)
    return result


def run(
    corpus,
    data_folder,
    save_folder,
    parse,
    options,
    fold_of=None,
    split_of=None,
    presplit=False,
):
    """Prepare a corpus: skip if done, else parse, read headers, finish.

    Arguments
    ---------
    corpus : str
        Corpus name (file prefix).
    data_folder, save_folder : str
        Where the corpus is, and where outputs go.
    parse : callable
        ``problems -> rows``: finds the corpus root under ``data_folder``
        and returns rows with ``ID, wav, spk_id, emo`` and whatever else
        the corpus gives, but no duration yet.
    options : dict
        Every option of the corpus's ``prepare_*`` function: at least
        ``seed, max_per_condition, skip_bad, jobs``, and ``held_out,
        test_fraction, dev_fraction`` unless folds and splits are given.
        All but ``jobs`` identify the run.
    fold_of, split_of, presplit
        See :func:`finish`.

    Returns
    -------
    dict
        Role -> path of the outputs.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> corpus = tempfile.mkdtemp()
    >>> def parse(problems):
    ...     rows = []
    ...     for spk in "abcd":
    ...         for i, emo in enumerate(("neu", "neu", "sad", "sad")):
    ...             wav = os.path.join(corpus, f"{spk}{i}.wav")
    ...             soundfile.write(wav, numpy.zeros(1600), 16000)
    ...             rows.append({"ID": f"{spk}{i}", "wav": wav,
    ...                          "spk_id": spk, "emo": emo})
    ...     return rows
    >>> options = dict(seed=0, max_per_condition=None, skip_bad=False)
    >>> out = run("demo", corpus, corpus, parse, options)
    >>> len(open(out["manifest"]).readlines())  # header and 16 rows
    17
    >>> run("demo", corpus, corpus, parse, options) == out  # skipped
    True
    """
    options = dict(options)
    jobs = options.pop("jobs", 1)
    if jobs < 1:
        raise ValueError(f"jobs must be at least 1, got {jobs}")
    settings = common_settings(data_folder, **options)
    if already_prepared(corpus, save_folder, settings, data_folder):
        logger.info("%s: already prepared in %s, skipping", corpus, save_folder)
        return saved_outputs(corpus, save_folder)
    problems = Problems(options["skip_bad"])
    rows = parse(problems)
    # Taken once parsing has found the corpus root, so that a wrong folder
    # (say, /) is refused before anything walks it.
    content = corpus_content(corpus, data_folder, save_folder)
    rows = add_durations(rows, problems, jobs, desc=f"{corpus} headers")
    return finish(
        corpus,
        rows,
        save_folder,
        settings,
        problems,
        seed=options["seed"],
        held_out=options.get("held_out", 4),
        test_fraction=options.get("test_fraction", 0.2),
        dev_fraction=options.get("dev_fraction", 0.1),
        max_per_condition=options["max_per_condition"],
        fold_of=fold_of,
        split_of=split_of,
        presplit=presplit,
        content=content,
    )


#: The ``Arguments`` entries that every ``prepare_<corpus>`` documents
#: alike; a preparer's docstring names one by a line ``{key}`` (see
#: :func:`preparer`).
OPTION_DOCS = {
    "save_folder": "save_folder : str\n    Where outputs go.",
    "seed": "seed : int\n    Seed of folds, splits and trials.",
    "held_out": "held_out : int\n    Speakers per fold.",
    "max_per_condition": "max_per_condition : int, optional\n"
    "    Cap on target (and non-target) trials per condition.",
    "skip_bad": "skip_bad : bool\n"
    "    Skip (and count) unexpected names and unreadable files instead of\n"
    "    stopping at the first one.",
    "jobs": "jobs : int\n    Threads reading audio headers.",
}

_RETURNS = """
Returns
-------
dict
    Role -> path of each output.

Example
-------
>>> from emotion_invariant.data.corpora import CorpusError
>>> try:
...     prepare_{corpus}("/nonexistent/{corpus}", "/tmp/out")
... except CorpusError as err:
...     print(err)  # doctest: +ELLIPSIS
/nonexistent/{corpus}: no such folder; expected ...
"""


def _fill_doc(doc, corpus):
    """``doc`` with each ``{key}`` line replaced by its :data:`OPTION_DOCS`
    entry, indented as the line, then the sections Returns and Example.

    Example
    -------
    >>> doc = _fill_doc("Prepare X.\\n\\n    Arguments\\n    {jobs}\\n", "x")
    >>> print(doc[: doc.index("Returns")])
    Prepare X.
    <BLANKLINE>
    Arguments
    jobs : int
        Threads reading audio headers.
    <BLANKLINE>
    <BLANKLINE>
    >>> 'prepare_x("/nonexistent/x", "/tmp/out")' in doc
    True
    """
    doc = inspect.cleandoc(doc or "")

    def entry(match):
        indent, key = match.groups()
        return indent + OPTION_DOCS[key].replace("\n", "\n" + indent)

    keys = "|".join(OPTION_DOCS)
    doc = re.sub(rf"(?m)^( *)\{{({keys})\}}$", entry, doc)
    return doc + "\n" + _RETURNS.replace("{corpus}", corpus)


def preparer(corpus):
    """Make ``prepare_<corpus>`` of a function that says how to parse it.

    The decorated function takes the preparer's arguments (``data_folder,
    save_folder`` and the corpus's options with their defaults), checks
    them, and returns the keyword arguments of :func:`run` that depend on
    them: ``parse`` (``problems -> rows``) and, where the corpus needs
    them, ``fold_of``, ``split_of`` or ``presplit``. The preparer runs
    :func:`run` with every option but the folders (they identify the
    run). Its docstring gets each ``{key}`` line of :data:`OPTION_DOCS`
    filled in, and the sections Returns and Example.

    Arguments
    ---------
    corpus : str
        Corpus name (file prefix).

    Returns
    -------
    callable
        A decorator.

    Example
    -------
    >>> import tempfile
    >>> @preparer("demo")
    ... def prepare_demo(data_folder, save_folder, seed=0,
    ...                  max_per_condition=None, skip_bad=False, jobs=1):
    ...     return {"parse": lambda problems: problems("bad", "x.wav: bad")}
    >>> prepare_demo(tempfile.mkdtemp(), tempfile.mkdtemp())
    Traceback (most recent call last):
    ...
    emotion_invariant.data.corpora.CorpusError: x.wav: bad (--skip-bad, \
or skip_bad=True, skips such files)
    """

    def decorate(function):
        signature = inspect.signature(function)

        @functools.wraps(function)
        def prepare(*args, **kwargs):
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            options = dict(bound.arguments)
            data_folder = options.pop("data_folder")
            save_folder = options.pop("save_folder")
            return run(
                corpus,
                data_folder,
                save_folder,
                options=options,
                **function(*args, **kwargs),
            )

        prepare.__doc__ = _fill_doc(function.__doc__, corpus)
        return prepare

    return decorate
