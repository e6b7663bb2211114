"""Check a manifest's audio once, before training or evaluation reads it.

A missing, empty or corrupt file, or an utterance too short for the model,
would otherwise surface as a traceback from whichever batch holds it,
naming no utterance. Every row is checked up front: its header read, its
duration compared with the model's minimum, and all-silent files counted
(a warning: silence is usable audio, if suspicious).
"""

import logging
import os

import numpy
import soundfile

from emotion_invariant.data.manifest import (
    ManifestError,
    check_audio_file,
    read_manifest,
    resolve_wav,
    write_manifest,
)

logger = logging.getLogger(__name__)

SILENCE_PEAK = 1e-4  # -80 dBFS: nothing a microphone records is this quiet
SHOWN = 5  # problems named in a message; the rest are counted


def _problem(row, where, data_root, min_duration):
    """What is wrong with one row's audio (None if nothing), and whether
    it is silent."""
    path = resolve_wav(row["wav"], data_root)
    if os.path.isfile(path) and os.path.getsize(path) == 0:
        return f"{where}: empty file (0 bytes) {path}", False
    try:
        info = check_audio_file(path, where)
    except ManifestError as err:
        return str(err), False
    start = int(row["start"]) if row.get("start") not in (None, "") else 0
    stop = row.get("stop")
    stop = int(stop) if stop not in (None, "") else info.frames
    seconds = (min(stop, info.frames) - start) / info.samplerate
    if seconds < min_duration:
        return (
            f"{where}: {seconds * 1000:.0f} ms of audio in {path}, shorter "
            f"than the model's minimum of {min_duration} s",
            False,
        )
    audio, _ = soundfile.read(path, start=start, stop=stop, always_2d=True)
    return None, bool(numpy.abs(audio).max() < SILENCE_PEAK)


def check_manifest_audio(
    path, data_root, min_duration, skip_bad=False, out=None
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
    bad, silent, kept = [], [], []
    for line, row in enumerate(rows, 2):  # the header is line 1
        where = f"line {line} (ID {row['ID']})"
        problem, is_silent = _problem(row, where, data_root, min_duration)
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
