"""Finding a corpus and its files: the root, the audio, its headers.

A user points a preparer at a folder; this module checks that it is the
corpus root (and says where the root probably is when it is not), walks
its audio files by name, reads transcripts whatever their encoding, and
reads durations from the audio headers without decoding. Bad files either
stop the preparation at the first one or are skipped and counted
(:class:`Problems`).
"""

import csv
import logging
import os
import re
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import soundfile
from tqdm import tqdm

from emotion_invariant.data.manifest import ManifestError

logger = logging.getLogger(__name__)


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
    emotion_invariant.corpora.files.CorpusError: ... did you mean .../corpus?
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
    emotion_invariant.corpora.files.CorpusError: x/bad.wav: ...
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


def audio_files(folder, name, expected, problems):
    """The ``.wav`` files of ``folder`` whose names parse, in name order.

    What a corpus's file names encode (speaker, emotion, sentence...) is
    its own; finding the files and refusing the names that do not parse
    is the same for every corpus.

    Arguments
    ---------
    folder : str
        A folder of audio files; sub-folders and other files are passed
        over.
    name : callable
        ``file name -> fields``: what the name encodes, or ``None`` when
        it is not a name of the corpus (e.g. a compiled pattern's
        ``fullmatch``).
    expected : str
        What a name should look like, for the problem it is otherwise.
    problems : Problems
        Where names that do not parse go (raise, or skip and count).

    Yields
    ------
    tuple
        ``(path, stem, fields)`` of each file whose name parses, ``stem``
        its name less ``.wav`` (the utterance ID of most corpora).

    Example
    -------
    >>> import os, re, tempfile
    >>> d = tempfile.mkdtemp()
    >>> for n in ("03a01Fa.wav", "notes.txt", "bad.wav"):
    ...     open(os.path.join(d, n), "w").close()
    >>> pattern = re.compile(r"(\\d\\d)a01([A-Z])a\\.wav")
    >>> problems = Problems(skip_bad=True)
    >>> found = audio_files(d, pattern.fullmatch, "NNa01Xa.wav", problems)
    >>> [(stem, fields.groups()) for _, stem, fields in found]
    [('03a01Fa', ('03', 'F'))]
    >>> problems.examples["unexpected file name"][0].endswith(
    ...     "bad.wav: unexpected file name; expected NNa01Xa.wav")
    True
    """
    for entry in listdir(folder):
        path = os.path.join(folder, entry)
        if os.path.isdir(path) or not entry.lower().endswith(".wav"):
            continue
        fields = name(entry)
        if fields is None:
            problems(
                "unexpected file name",
                f"{path}: unexpected file name; expected {expected}",
            )
            continue
        yield path, entry[: -len(".wav")], fields


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


def read_table(path, required):
    """The rows of a CSV label file, keys and values stripped.

    Arguments
    ---------
    path : str
        The file (UTF-8, with or without a byte order mark).
    required : sequence of str
        Columns it must have.

    Returns
    -------
    list of dict

    Raises
    ------
    CorpusError
        Naming the file, the missing columns and those it has.

    Example
    -------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp(), "labels.csv")
    >>> _ = path.write_text("FileName, EmoClass\\na.wav, N\\n")
    >>> read_table(path, ["FileName", "EmoClass"])
    [{'FileName': 'a.wav', 'EmoClass': 'N'}]
    >>> read_table(path, ["SpkrID"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.corpora.files.CorpusError: .../labels.csv: missing \
column(s) SpkrID (found: FileName,EmoClass)
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in required if c not in header]
        if missing:
            raise CorpusError(
                f"{path}: missing column(s) {', '.join(missing)} "
                f"(found: {','.join(header) or 'nothing'})"
            )
        return [
            {k.strip(): (v or "").strip() for k, v in row.items() if k}
            for row in reader
        ]


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
