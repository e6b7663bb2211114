"""Check a manifest's audio once, before training or evaluation reads it.

A missing, empty or corrupt file, or an utterance too short for the model,
would otherwise surface as a traceback from whichever batch holds it,
naming no utterance. Every row is checked up front: its header read, its
duration compared with the model's minimum, and all-silent files counted
(a warning: silence is usable audio, if suspicious).

Reading every file in full costs about 0.6 ms a second of audio from the
page cache (RAVDESS, 1.5 h: 3.3 s), so about 1.5 h for VoxCeleb2's
2,400 h. With a cache folder, what a file passed with (its length and peak)
is kept under its size and modification time, so a later check on the same
corpus, by any run, reads only the files that are new or changed; of the
others it looks up the size and time alone.
"""

import contextlib
import hashlib
import json
import logging
import os
import reprlib

import numpy
import soundfile

from emotion_invariant.atomic import atomic_open
from emotion_invariant.data.manifest import (
    ManifestError,
    check_audio_file,
    read_manifest,
    resolve_wav,
    write_manifest,
)
from emotion_invariant.messages import os_error_message

logger = logging.getLogger(__name__)

SILENCE_PEAK = 1e-4  # -80 dBFS: nothing a microphone records is this quiet
SHOWN = 5  # problems named in a message; the rest are counted


def _bounds(row):
    """A row's ``start`` and ``stop`` samples (None where not given)."""
    start, stop = row.get("start"), row.get("stop")
    start = int(start) if start not in (None, "") else 0
    stop = int(stop) if stop not in (None, "") else None
    return start, stop


def _inspect(path, where, start, stop):
    """``(frames, sample rate, peak)`` of a file's ``[start, stop)``
    segment, or a message saying why it is unusable."""
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return f"{where}: empty file (0 bytes) {path}"
    try:
        info = check_audio_file(path, where)
    except ManifestError as err:
        return str(err)
    end = info.frames if stop is None else min(stop, info.frames)
    if end <= start:
        return info.frames, info.samplerate, 0.0
    audio, _ = soundfile.read(path, start=start, stop=end, always_2d=True)
    return info.frames, info.samplerate, float(numpy.abs(audio).max())


#: How an error names what a cache file holds instead of an object.
JSON_TYPES = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}

#: What each stored entry holds, in order (all integers but the peak).
ENTRY = ("size", "mtime_ns", "frames", "sample rate", "peak")


def _entry_problem(entry):
    """Why a stored entry is not what :meth:`AudioCache.put` writes (None
    if it is): a corrupt or hand-edited one would pass a file on a wrong
    length, or fail with a bare unpacking error.

    Example
    -------
    >>> _entry_problem([44, 1700000000000000000, 3200, 16000, 0.5])
    >>> _entry_problem([44, 1700000000000000000])
    'expected a list of 5 (size, mtime_ns, frames, sample rate, peak), \
got [44, 1700000000000000000]'
    >>> _entry_problem([44, 17, 3200, 0, 0.5])
    'sample rate 0 is not a positive integer'
    """
    if not isinstance(entry, list) or len(entry) != len(ENTRY):
        return (
            f"expected a list of {len(ENTRY)} ({', '.join(ENTRY)}), got "
            f"{reprlib.repr(entry)}"
        )
    *counts, peak = entry
    for name, value in zip(ENTRY, counts):
        # bool is an int to Python, never to this file
        if type(value) is not int:
            return f"{name} {reprlib.repr(value)} is not an integer"
    size, _, frames, rate = counts
    if size < 0 or frames < 0:
        return f"negative size or frames in {entry}"
    if rate <= 0:
        return f"sample rate {rate} is not a positive integer"
    if type(peak) not in (int, float) or not 0 <= peak < float("inf"):
        return f"peak {reprlib.repr(peak)} is not a number >= 0"
    return None


def _stored_problem(stored):
    """Why a cache file's JSON is not what :meth:`AudioCache.save` writes
    (None if it is), naming the first wrong entry.

    Example
    -------
    >>> _stored_problem({"data_root": "/c", "files": {}})
    >>> _stored_problem([])
    'expected a JSON object with data_root and files, got a list'
    >>> _stored_problem({"data_root": "/c", "files": {"/c/a.wav|0|None": []}})
    ... # doctest: +ELLIPSIS
    "entry '/c/a.wav|0|None': expected a list of 5 (...), got []"
    """
    if not isinstance(stored, dict) or set(stored) != {"data_root", "files"}:
        if isinstance(stored, dict):
            got = f"keys {sorted(stored)}" if stored else "an empty object"
        else:
            got = JSON_TYPES.get(type(stored), type(stored).__name__)
        return f"expected a JSON object with data_root and files, got {got}"
    if not isinstance(stored["data_root"], str):
        return f"'data_root' {reprlib.repr(stored['data_root'])} is not text"
    if not isinstance(stored["files"], dict):
        return "'files' is not a JSON object"
    for key, entry in stored["files"].items():
        problem = _entry_problem(entry)
        if problem is not None:
            return f"entry {reprlib.repr(key)}: {problem}"
    return None


class AudioCache:
    """What each file passed the check with, kept between runs.

    One JSON file per corpus folder in ``folder``, holding for each file
    and segment its size, modification time, length in frames, sample rate
    and peak. An entry is used only while the file's size and modification
    time are those it was stored with; otherwise the file is read again.
    A cache that cannot be read, or holds anything but what :meth:`save`
    writes, is ignored with a warning naming it and what is wrong, and
    rewritten at the end of the check; one that cannot be written is
    reported and the check goes on without it.

    Arguments
    ---------
    folder : str
        Where the cache files are kept (created when first written).
    data_root : str
        The corpus folder (what ``$data_root`` stands for); its real path
        names the cache file.

    Example
    -------
    >>> import tempfile
    >>> cache = AudioCache(tempfile.mkdtemp(), "/corpus")
    >>> key, stat = cache.key(__file__, 0, None), os.stat(__file__)
    >>> cache.get(key, stat) is None
    True
    >>> cache.put(key, stat, (16000, 16000, 0.5))
    >>> cache.save()
    >>> AudioCache(cache.folder, "/corpus").get(key, stat)
    (16000, 16000, 0.5)
    """

    def __init__(self, folder, data_root):
        if not isinstance(folder, (str, os.PathLike)):
            raise ManifestError(
                f"audio_cache: {folder!r} is not valid; expected a folder "
                "or null"
            )
        self.folder = os.path.expanduser(os.fspath(folder))
        root = os.path.realpath(data_root or "")
        name = hashlib.sha256(root.encode()).hexdigest()[:16]
        self.path = os.path.join(self.folder, f"audio-{name}.json")
        self.root, self.entries, self.changed = root, {}, False
        try:
            with open(self.path) as f:
                stored = json.load(f)
        except FileNotFoundError:
            return  # the first check of this corpus
        except (OSError, ValueError) as err:
            if isinstance(err, OSError):
                why = os_error_message(err)
            else:
                why = f"{self.path}: not JSON ({err})"
            self._ignore(why)
            return
        problem = _stored_problem(stored)
        if problem is None and stored["data_root"] != root:
            problem = f"holds {stored['data_root']!r}, not this corpus"
        if problem is not None:
            self._ignore(f"{self.path}: {problem}")
            return
        self.entries = stored["files"]

    def _ignore(self, why):
        """Start empty, and rewrite the cache at the end of the check."""
        logger.warning(
            "audio_cache: ignoring %s; every file is read again and the "
            "cache rewritten",
            why,
        )
        self.changed = True

    @staticmethod
    def key(path, start, stop):
        """What a file's segment is stored under."""
        return f"{os.path.realpath(path)}|{start}|{stop}"

    def get(self, key, stat):
        """The stored ``(frames, sample rate, peak)``, or None when the
        file is not stored or has changed since (``stat``: its
        ``os.stat``)."""
        entry = self.entries.get(key)
        if entry is None or entry[:2] != [stat.st_size, stat.st_mtime_ns]:
            return None
        return tuple(entry[2:])

    def put(self, key, stat, found):
        """Store what a file passed with (see :meth:`get`)."""
        self.entries[key] = [stat.st_size, stat.st_mtime_ns, *found]
        self.changed = True

    def save(self):
        """Write the cache, whole or not at all, if anything was added."""
        if not self.changed:
            return
        try:
            with atomic_open(self.path) as f:
                json.dump({"data_root": self.root, "files": self.entries}, f)
        except OSError as err:
            logger.warning(
                "audio_cache: could not write %s; the next run reads "
                "the audio again",
                os_error_message(err),
            )
        self.changed = False


def _problem(row, where, data_root, min_duration, cache=None):
    """What is wrong with one row's audio (None if nothing), and whether
    it is silent."""
    path = resolve_wav(row["wav"], data_root)
    start, stop = _bounds(row)
    stat = found = None
    if cache is not None:
        key = cache.key(path, start, stop)
        with contextlib.suppress(OSError):  # missing: _inspect says so
            stat = os.stat(path)
            found = cache.get(key, stat)
    if found is None:
        found = _inspect(path, where, start, stop)
        if isinstance(found, str):
            return found, False
        if stat is not None:
            cache.put(key, stat, found)
    frames, rate, peak = found
    end = frames if stop is None else min(stop, frames)
    seconds = (end - start) / rate
    if seconds < min_duration:
        return (
            f"{where}: {seconds * 1000:.0f} ms of audio in {path}, shorter "
            f"than the model's minimum of {min_duration} s",
            False,
        )
    return None, peak < SILENCE_PEAK


def check_manifest_audio(
    path, data_root, min_duration, skip_bad=False, out=None, cache=None
):
    """Check every row's audio in a manifest; fail, or drop the bad rows.

    Arguments
    ---------
    path : str
        The manifest.
    data_root : str
        What ``$data_root`` stands for.
    min_duration : float
        Seconds of audio the model needs (its padding and pooling fail on
        less).
    skip_bad : bool
        Drop rows whose audio is missing, empty, unreadable or too short,
        with a warning, instead of failing.
    out : str, optional
        Where the kept rows go when some are dropped (default: beside
        ``path``, ``<name>_checked.csv``).
    cache : str, optional
        A folder where what each file passed with is kept between runs
        (see :class:`AudioCache`); None reads every file every time.

    Returns
    -------
    str
        The manifest to use: ``path`` itself when every row is usable,
        else ``out`` (``skip_bad`` only).

    Raises
    ------
    ManifestError
        Naming the manifest, and the line, ID and file of each bad row (the
        first few, and a count), unless ``skip_bad``; always when no row
        is usable.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> soundfile.write(os.path.join(folder, "a.wav"),
    ...                 numpy.full(1600, 0.1), 16000)
    >>> rows = [{"ID": uid, "duration": 0.1, "wav": f"$data_root/{uid}.wav",
    ...          "spk_id": "s1", "emo": "neu"} for uid in ("a", "b")]
    >>> manifest = os.path.join(folder, "m.csv")
    >>> write_manifest(rows, manifest)
    >>> check_manifest_audio(manifest, folder, 0.05)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: .../m.csv: 1 of 2 \
row(s) have unusable audio: line 3 (ID b): audio file not found: .../b.wav; \
fix or remove them, or pass --skip_bad=True to drop them
    >>> kept = check_manifest_audio(manifest, folder, 0.05, skip_bad=True)
    >>> [row["ID"] for row in read_manifest(kept)]
    ['a']
    """
    rows = read_manifest(path, data_root=data_root, allow_empty_emo=True)
    if cache is not None:
        cache = AudioCache(cache, data_root)
    bad, silent, kept = [], [], []
    for line, row in enumerate(rows, 2):  # the header is line 1
        where = f"line {line} (ID {row['ID']})"
        problem, is_silent = _problem(
            row, where, data_root, min_duration, cache
        )
        if problem is not None:
            bad.append(problem)
            continue
        if is_silent:
            silent.append(where)
        kept.append(row)
    if silent:
        logger.warning(
            "%s: %d of %d utterance(s) are silent (peak below -80 dBFS), "
            "e.g. %s",
            path,
            len(silent),
            len(rows),
            "; ".join(silent[:SHOWN]),
        )
    if cache is not None:
        cache.save()
    if not bad:
        return path
    listed = "; ".join(bad[:SHOWN])
    if len(bad) > SHOWN:
        listed += f" (+{len(bad) - SHOWN} more)"
    summary = f"{path}: {len(bad)} of {len(rows)} row(s) have unusable audio"
    if not kept:
        raise ManifestError(f"{summary}, every one: {listed}")
    if not skip_bad:
        raise ManifestError(
            f"{summary}: {listed}; fix or remove them, or pass "
            "--skip_bad=True to drop them"
        )
    logger.warning("%s: %s; dropped (skip_bad)", summary, listed)
    if out is None:
        out = os.path.splitext(path)[0] + "_checked.csv"
    write_manifest(kept, out)
    return out
