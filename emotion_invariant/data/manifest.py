"""Manifests: SpeechBrain CSV files that every stage of the project reads.

Columns are ``ID,duration,wav,spk_id,emo`` plus optional ones (see
:data:`OPTIONAL_COLUMNS`). ``wav`` may begin with ``$data_root``. Emotions
use one shared vocabulary (:data:`EMOTIONS`); a corpus's own label stays in
``emo_raw``. Reading validates every row and names the file and line of the
first problem; writing is atomic.
"""

import csv
import json
import os

import soundfile

from emotion_invariant.atomic import atomic_open

EMOTIONS = (
    "neu",
    "hap",
    "ang",
    "sad",
    "sur",
    "fea",
    "dis",
    "cal",
    "bor",
    "oth",
)
REQUIRED_COLUMNS = ("ID", "duration", "wav", "spk_id", "emo")
OPTIONAL_COLUMNS = (
    "start",
    "stop",
    "text",
    "gender",
    "lang",
    "split",
    "fold",
    "emo_raw",
)


class ManifestError(ValueError):
    """A manifest, a split or a trial list that cannot be used as it is."""


def resolve_wav(wav, data_root=None):
    """Replace a leading ``$data_root`` in a ``wav`` field.

    Arguments
    ---------
    wav : str
        The ``wav`` field of a manifest row.
    data_root : str, optional
        The folder that ``$data_root`` stands for.

    Returns
    -------
    str

    Example
    -------
    >>> resolve_wav("$data_root/a.wav", "/corpus")
    '/corpus/a.wav'
    >>> resolve_wav("/abs/a.wav", "/corpus")
    '/abs/a.wav'
    """
    if data_root is not None and wav.startswith("$data_root"):
        return os.path.join(data_root, wav[len("$data_root") :].lstrip("/"))
    return wav


def check_audio_file(path, where):
    """Fail clearly unless ``path`` is a readable, non-empty audio file.

    Only the header is read, so this is cheap even for long corpora.

    Arguments
    ---------
    path : str
        Audio file to check.
    where : str
        Prefix for the error, e.g. ``"train.csv line 3 (ID utt1)"``.

    Returns
    -------
    soundfile._SoundFileInfo
        The header information.
    """
    if not os.path.isfile(path):
        raise ManifestError(f"{where}: audio file not found: {path}")
    try:
        info = soundfile.info(path)
    except Exception as err:  # libsndfile raises several types
        raise ManifestError(
            f"{where}: unreadable audio file {path}: {err}"
        ) from err
    if info.frames == 0:
        raise ManifestError(f"{where}: empty audio file {path}")
    return info


def validate_rows(
    rows,
    source="<rows>",
    check_audio=False,
    data_root=None,
    allow_empty_emo=False,
):
    """Check manifest rows, raising :class:`ManifestError` on the first problem.

    Arguments
    ---------
    rows : list of dict
        Rows as read from a CSV (all values strings) or built in code.
    source : str
        Name of the file the rows came from, used in error messages.
    check_audio : bool
        Also open each audio file's header (exists, readable, not empty).
    data_root : str, optional
        What ``$data_root`` stands for when ``check_audio`` is on.
    allow_empty_emo : bool
        Accept rows without an emotion label (unlabelled speech).

    Example
    -------
    >>> validate_rows([{"ID": "a", "duration": "1.0", "wav": "a.wav",
    ...                 "spk_id": "s1", "emo": "joy"}], "m.csv")
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: m.csv line 2 (ID a): \
unknown emotion 'joy'; expected one of neu hap ang sad sur fea dis cal bor oth
    """
    seen = {}
    for index, row in enumerate(rows):
        line = index + 2  # the header is line 1
        where = f"{source} line {line}"
        missing = [c for c in REQUIRED_COLUMNS if row.get(c) is None]
        if missing:
            raise ManifestError(
                f"{where}: missing column(s) {', '.join(missing)}"
            )
        uid = str(row["ID"]).strip()
        if not uid:
            raise ManifestError(f"{where}: empty ID")
        where = f"{where} (ID {uid})"
        if uid in seen:
            raise ManifestError(
                f"{where}: duplicate ID, first seen on line {seen[uid]}"
            )
        seen[uid] = line
        try:
            duration = float(row["duration"])
        except ValueError:
            raise ManifestError(
                f"{where}: duration {row['duration']!r} is not a number"
            ) from None
        if not duration > 0:
            raise ManifestError(
                f"{where}: duration must be > 0, got {duration}"
            )
        if not str(row["spk_id"]).strip():
            raise ManifestError(f"{where}: empty spk_id")
        emo = row["emo"]
        if emo not in EMOTIONS and not (allow_empty_emo and emo == ""):
            raise ManifestError(
                f"{where}: unknown emotion {emo!r}; expected one of "
                + " ".join(EMOTIONS)
            )
        if check_audio:
            check_audio_file(resolve_wav(row["wav"], data_root), where)


def read_manifest(
    path, check_audio=False, data_root=None, allow_empty_emo=False
):
    """Read and validate a manifest.

    Arguments
    ---------
    path : str
        CSV file with at least :data:`REQUIRED_COLUMNS`.
    check_audio : bool
        Also check that every audio file is readable and not empty.
    data_root : str, optional
        What ``$data_root`` stands for (defaults to the manifest's folder).
    allow_empty_emo : bool
        Accept rows without an emotion label.

    Returns
    -------
    list of dict
        One dict a row, values as strings, in file order.

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "m.csv")
    >>> row = {"ID": "u1", "duration": 1.5, "wav": "$data_root/u1.wav",
    ...        "spk_id": "s1", "emo": "ang"}
    >>> write_manifest([row], path)
    >>> read_manifest(path)[0]["emo"]
    'ang'
    """
    if not os.path.isfile(path):
        raise ManifestError(f"manifest not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise ManifestError(
                f"{path}: missing column(s) {', '.join(missing)} in the header "
                f"(found: {','.join(header) or 'nothing'})"
            )
        rows = [dict(row) for row in reader]
    if not rows:
        raise ManifestError(f"{path}: the manifest has no rows")
    for index, row in enumerate(rows):
        if None in row or any(v is None for v in row.values()):
            raise ManifestError(
                f"{path} line {index + 2}: expected {len(header)} fields"
            )
    if data_root is None:
        data_root = os.path.dirname(os.path.abspath(path))
    validate_rows(rows, path, check_audio, data_root, allow_empty_emo)
    return rows


def write_manifest(rows, path, columns=None):
    """Write rows as a manifest, atomically, after validating them.

    Arguments
    ---------
    rows : list of dict
        Rows with at least :data:`REQUIRED_COLUMNS`.
    path : str
        Destination CSV.
    columns : list of str, optional
        Column order; defaults to the required columns followed by the
        optional ones that any row has, then any others in first-seen order.
    """
    validate_rows(rows, path, allow_empty_emo=True)
    if columns is None:
        present = []
        for row in rows:
            present.extend(k for k in row if k not in present)
        columns = list(REQUIRED_COLUMNS)
        columns += [c for c in OPTIONAL_COLUMNS if c in present]
        columns += [c for c in present if c not in columns]
    with atomic_open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {
                    k: (
                        f"{v:.3f}"
                        if k == "duration" and isinstance(v, float)
                        else v
                    )
                    for k, v in row.items()
                }
            )


def check_splits(splits, rows, source="<splits>"):
    """Check that splits name known speakers and never share one.

    Arguments
    ---------
    splits : dict
        Split name -> list of speaker ids.
    rows : list of dict
        The manifest rows the splits refer to.
    source : str
        Name of the splits file, used in error messages.

    Example
    -------
    >>> rows = [{"spk_id": "a"}, {"spk_id": "b"}]
    >>> check_splits({"train": ["a"], "test": ["b"]}, rows)
    >>> check_splits({"train": ["a"], "test": ["a"]}, rows)
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: <splits>: speaker 'a' \
is in both 'train' and 'test'
    """
    known = {row["spk_id"] for row in rows}
    owner = {}
    for name, speakers in splits.items():
        for spk in speakers:
            if spk not in known:
                raise ManifestError(
                    f"{source}: split {name!r} names speaker {spk!r}, "
                    "who has no utterance in the manifest"
                )
            if spk in owner:
                raise ManifestError(
                    f"{source}: speaker {spk!r} is in both {owner[spk]!r} "
                    f"and {name!r}"
                )
            owner[spk] = name


def read_splits(path, rows):
    """Read a ``splits.json`` (split -> speakers) and check it against rows.

    Arguments
    ---------
    path : str
        JSON file mapping split names to lists of speaker ids.
    rows : list of dict
        The manifest rows.

    Returns
    -------
    dict
        Split name -> list of speaker ids.
    """
    try:
        with open(path) as f:
            splits = json.load(f)
    except (OSError, json.JSONDecodeError) as err:
        raise ManifestError(f"{path}: cannot read splits: {err}") from err
    if not isinstance(splits, dict) or not all(
        isinstance(v, list) for v in splits.values()
    ):
        raise ManifestError(f"{path}: expected an object of speaker lists")
    check_splits(splits, rows, path)
    return splits


def select(rows, **conditions):
    """Rows whose fields match all conditions (a value or a collection).

    Example
    -------
    >>> rows = [{"spk_id": "a", "emo": "neu"}, {"spk_id": "b", "emo": "ang"}]
    >>> [r["spk_id"] for r in select(rows, emo={"ang", "sad"})]
    ['b']
    """

    def match(value, wanted):
        if isinstance(wanted, (set, frozenset, list, tuple)):
            return value in wanted
        return value == wanted

    return [
        row
        for row in rows
        if all(match(row.get(k), v) for k, v in conditions.items())
    ]


def sample_per_group(rows, keys, count, seed=0):
    """At most ``count`` rows of each group, drawn with ``seed``.

    Groups are the distinct values of the ``keys`` columns; the draw does
    not depend on the rows' order.

    Example
    -------
    >>> rows = [{"ID": str(i), "spk_id": "ab"[i % 2]} for i in range(6)]
    >>> picked = sample_per_group(rows, ("spk_id",), 2, seed=1)
    >>> sorted(r["spk_id"] for r in picked)
    ['a', 'a', 'b', 'b']
    """
    import random

    groups = {}
    for row in sorted(rows, key=lambda r: r["ID"]):
        groups.setdefault(tuple(row[k] for k in keys), []).append(row)
    rng = random.Random(seed)
    return [
        row
        for key in sorted(groups)
        for row in rng.sample(groups[key], min(len(groups[key]), count))
    ]
