"""The record of a finished preparation, to skip it when nothing changed.

SpeechBrain's preparers skip their work when its outputs exist. Here a
preparation is skipped only when ``<corpus>_prepare.json`` says that the
same settings, from a corpus folder holding the same files, finished and
wrote outputs that are all still there.
"""

import hashlib
import json
import os

SPLITS = ("train", "dev", "test")
_FORMAT_VERSION = 1


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
