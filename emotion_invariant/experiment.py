"""A recipe's start-up, the same for every recipe.

SpeechBrain recipes begin alike: parse the command line, load the
hyperparameters (``load_hyperpyyaml`` on the file, here through
:func:`emotion_invariant.hparams.load_hparams`, which also checks every
method and training key), join the DDP group, create the experiment folder
and prepare the data on the main process. Each recipe and its
``evaluate.py`` call :func:`start` instead of repeating it; it also checks
the device and locks the output folder for the run
(:mod:`emotion_invariant.runlock`) before anything is written there.
"""

import os
import sys

import speechbrain as sb
import torch
from speechbrain.utils.distributed import get_rank, run_on_main

from emotion_invariant.corpora.audio_check import check_manifest_audio
from emotion_invariant.corpora.prepare import prepare
from emotion_invariant.data.fold_manifests import (
    fold_labels,
    fold_run,
    write_fold,
    write_fold_manifests,
)
from emotion_invariant.data.folds import ROLES
from emotion_invariant.hparams import (
    load_hparams,
    parse_overrides,
    plain_hparams,
    save_hparams,
)
from emotion_invariant.memory import keep_freed_memory
from emotion_invariant.runlock import RunFolderLocked, acquire_run_lock

#: The errors a recipe reports as one ``error:`` line: bad input and
#: settings, unusable files and folders, an output folder in use.
USER_ERRORS = (ValueError, OSError, RunFolderLocked)

#: The annotation keys of the train, dev and test manifests.
ANNOTATIONS = tuple(f"{key}_annotation" for key in ROLES.values())
#: Annotation keys a speaker-verification fold points at, and their files.
FOLD_FILES = {
    "train_annotation": "train.csv",
    "valid_annotation": "dev.csv",
    "test_annotation": "test.csv",
    "trials_file": "trials.txt",
}


def check_override_values(argv):
    """Refuse a command-line value holding ``=``.

    SpeechBrain's parser joins the overrides with ``=`` and splits them
    again, so ``--output_folder=runs/lr=2`` would silently become the
    folder ``runs/lr 2``. Such a value is an error naming its key.

    Example
    -------
    >>> check_override_values(["h.yaml", "--lr=0.1", "--device", "cpu"])
    >>> check_override_values(["h.yaml", "--output_folder", "a=b"])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: --output_folder: 'a=b' holds '=', which SpeechBrain's ...
    """
    key = None
    for arg in argv[1:]:
        if arg.startswith("--"):
            key, _, value = arg.partition("=")
            if not value:
                continue
        elif key is None:
            continue
        else:
            value = arg
        if "=" in value:
            raise ValueError(
                f"{key}: {value!r} holds '=', which SpeechBrain's "
                "command-line parser turns into a space; rename it"
            )
        key = None


def check_device(device):
    """Refuse a ``--device`` the recipes cannot run on here.

    SpeechBrain takes any string, and fails with a traceback once the run
    folder is written: ``gpu0`` when the first module moves, ``cuda`` on a
    machine without a GPU when the Brain is built.

    Arguments
    ---------
    device : str or None
        The ``--device`` option (``None``: SpeechBrain's choice).

    Example
    -------
    >>> check_device(None); check_device("cpu")
    >>> check_device("gpu0")
    Traceback (most recent call last):
    ...
    ValueError: --device gpu0: not a device; use cpu, cuda or cuda:N
    """
    if device is None:
        return
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None:
        raise ValueError(
            f"--device {device}: not a device; use cpu, cuda or cuda:N"
        )
    if parsed.type not in ("cpu", "cuda"):
        raise ValueError(
            f"--device {device}: the recipes run on cpu, cuda or cuda:N"
        )
    if parsed.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ValueError(
                f"--device {device}: no CUDA GPU is available here; "
                "use --device cpu"
            )
        if (parsed.index or 0) >= count:
            raise ValueError(
                f"--device {device}: this machine has {count} CUDA GPU(s), "
                f"cuda:0 to cuda:{count - 1}"
            )


def lock_output_folder(folder, purpose=None):
    """Create the run's output folder and lock it until the process ends.

    Two runs writing into one folder mix their logs, prune each other's
    checkpoints and evaluate each other's models; the second one is
    refused instead (:func:`emotion_invariant.runlock.acquire_run_lock`).
    Under DDP only the main process (rank 0) takes the lock: the others
    write into the folder on its behalf.

    Arguments
    ---------
    folder : str
        The ``output_folder``.
    purpose : str, optional
        What the run does there, recorded in the lock.

    Returns
    -------
    emotion_invariant.runlock.RunLock or None
        The lock (``None`` on a DDP process other than the main one).

    Raises
    ------
    RunFolderLocked
        When another live process holds the folder.
    ValueError
        When ``folder`` is a file.
    OSError
        When the folder cannot be created or written to; the message names
        the folder.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> lock = lock_output_folder(folder, "train")
    >>> lock_output_folder(folder) is lock  # the same process: no error
    True
    >>> lock.release(); lock.release()
    """
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"output_folder {folder}: a file, not a folder")
    if get_rank() not in (None, 0):
        return None
    try:
        return acquire_run_lock(folder, purpose)
    except RunFolderLocked:
        raise
    except OSError as err:
        what = "write in" if os.path.isdir(folder) else "create"
        raise type(err)(
            f"output_folder {folder}: cannot {what} it ({err.strerror})"
        ) from None


def _script_name():
    """``train``, ``evaluate``, ...: the recipe script this process runs."""
    name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
    return None if name in ("", "__main__", "-c") else name


def start(argv, prepare_data=None, check=None):
    """Parse arguments, lock the output folder, load hyperparameters,
    create the experiment folder.

    The lock (:func:`lock_output_folder`) is held until the process ends,
    so that a second run into the same folder is refused while this one
    trains and evaluates.

    Arguments
    ---------
    argv : list of str
        ``hparams_file [--overrides]`` as on the command line.
    prepare_data : callable, optional
        ``prepare_data(hparams)``, run on the main process unless
        ``skip_prep`` is set.
    check : callable, optional
        ``check(hparams)``, run before anything but the lock is written (it
        raises on settings the recipe cannot use).

    Returns
    -------
    tuple
        ``(hparams, run_opts, hparams_file, overrides)``: overrides is a
        dict of the command line's overrides, so that a recipe can load the
        same file again with more of them.

    """
    check_override_values(argv)
    keep_freed_memory()
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    check_device(run_opts.get("device"))
    # Locked before the file is loaded: building its objects writes there.
    lock = lock_output_folder(
        plain_hparams(hparams_file, overrides)["output_folder"],
        _script_name(),
    )
    try:
        hparams = load_hparams(hparams_file, overrides)[0]
        overrides = parse_overrides(overrides)
        if check is not None:
            check(hparams)
        if not torch.distributed.is_initialized():  # once, however many runs
            sb.utils.distributed.ddp_init_group(run_opts)
        sb.create_experiment_directory(
            experiment_directory=hparams["output_folder"]
        )
        # SpeechBrain's hyperparams.yaml, written through a temporary file.
        run_on_main(
            save_hparams,
            args=[hparams_file, overrides, hparams["output_folder"]],
        )
        if prepare_data is not None and not hparams["skip_prep"]:
            run_on_main(prepare_data, kwargs={"hparams": hparams})
    except BaseException:
        # A run that did not start holds nothing (the process may go on,
        # as a test's does).
        if lock is not None:
            lock.release()
        raise
    return hparams, run_opts, hparams_file, overrides


def prepare_corpus(hparams):
    """Manifests and splits of the corpus (demo corpus or real)."""
    prepare(
        hparams["corpus"], hparams["data_folder"], hparams["manifest_folder"]
    )


def prepare_verification(hparams):
    """Manifests, splits and trials of the corpus; with ``fold: K``, fold
    K's own manifests and trials (see :func:`use_fold`)."""
    prepare(
        hparams["corpus"],
        hparams["data_folder"],
        hparams["manifest_folder"],
        max_per_condition=hparams["max_trials_per_condition"],
    )
    if hparams["fold"] is not None:
        write_fold(
            hparams["full_annotation"],
            str(hparams["fold"]),
            fold_folder(hparams),
            hparams["n_folds"],
            hparams["fold_seed"],
            hparams["fold_dev_fraction"],
            hparams["max_trials_per_condition"],
        )


def fold_folder(hparams):
    """Where fold K's manifests and trials live.

    Example
    -------
    >>> fold_folder({"manifest_folder": "m", "fold": 2})
    'm/fold_2'
    """
    return os.path.join(hparams["manifest_folder"], f"fold_{hparams['fold']}")


def use_fold(hparams):
    """Point the annotation keys at fold K's files (when ``fold`` is set).

    Example
    -------
    >>> hparams = {"manifest_folder": "m", "fold": 2}
    >>> use_fold(hparams)
    >>> hparams["trials_file"]
    'm/fold_2/trials.txt'
    """
    if hparams["fold"] is None:
        return
    folder = fold_folder(hparams)
    for key, name in FOLD_FILES.items():
        hparams[key] = os.path.join(folder, name)


def check_audio(hparams, keys):
    """Check the audio of each manifest named by ``hparams[key]``.

    With ``skip_bad``, each key then points at the manifest without the
    unusable rows (see
    :func:`emotion_invariant.corpora.audio_check.check_manifest_audio`).
    """
    for key in keys:
        hparams[key] = check_manifest_audio(
            hparams[key],
            hparams["data_folder"],
            hparams["min_duration"],
            hparams["skip_bad"],
            cache=hparams.get("audio_cache"),
        )


def start_verification(argv, check=None):
    """:func:`start` a speaker-verification run on its manifests.

    Prepares the corpus (and fold K's files with ``fold: K``), points the
    annotation keys at them (:func:`use_fold`) and checks their audio
    (:func:`check_audio`). The training and evaluation scripts of the
    speaker recipe both begin so.

    Arguments
    ---------
    argv : list of str
        ``hparams_file [--overrides]`` as on the command line.
    check : callable, optional
        As in :func:`start`.

    Returns
    -------
    tuple
        ``(hparams, run_opts)``.
    """
    hparams, run_opts, _, _ = start(argv, prepare_verification, check)
    use_fold(hparams)
    check_audio(hparams, ANNOTATIONS)
    return hparams, run_opts


def requested_folds(argv, check=None):
    """The runs an emotion recipe's command line asks for.

    ``[None]`` for the prepared speaker split (``fold: null``), every fold
    of the corpus for ``fold: all``, the folds of a comma-separated list
    (``fold: 1,2``), else the one fold given. The corpus is prepared first;
    ``check`` (as in :func:`start`) runs before that.
    """
    hparams = start(argv, prepare_corpus, check)[0]
    fold = hparams["fold"]
    if fold is None:
        return [None]
    labels = fold_labels(
        hparams["full_annotation"], hparams["n_folds"], hparams["fold_seed"]
    )
    if fold == "all":
        return labels
    return fold_list(fold, labels)


def fold_list(fold, labels):
    """The folds a ``fold`` value names, checked against the corpus's.

    Arguments
    ---------
    fold : str or int or list
        One fold, a comma-separated list of folds, or a list.
    labels : list of str
        The corpus's folds.

    Returns
    -------
    list of str
        The named folds, in the order given, each once.

    Example
    -------
    >>> fold_list("2,1", ["1", "2", "3"])
    ['2', '1']
    >>> fold_list(3, ["1", "2", "3"])
    ['3']
    >>> fold_list("1,7", ["1", "2", "3"])
    Traceback (most recent call last):
    ...
    ValueError: fold: '7' is not a fold of this corpus (folds: 1, 2, 3)
    """
    if isinstance(fold, (list, tuple)):
        names = [str(f).strip() for f in fold]
    else:
        names = [f.strip() for f in str(fold).split(",")]
    for name in names:
        if name not in labels:
            raise ValueError(
                f"fold: {name!r} is not a fold of this corpus "
                f"(folds: {', '.join(labels)})"
            )
    return list(dict.fromkeys(names))


def start_run(argv, fold=None, check=None, audio=ANNOTATIONS):
    """:func:`start` one emotion run: the speaker split or one fold.

    A fold's manifests are written under ``output_folder/fold_K``, the
    hyperparameters reloaded to point at them (``run_folder`` and the
    annotation keys), and the audio of the ``audio`` manifests checked.

    Arguments
    ---------
    argv : list of str
        ``hparams_file [--overrides]`` as on the command line.
    fold : str, optional
        The fold (default: the ``fold`` key, which must not be ``all``).
    check : callable, optional
        As in :func:`start`.
    audio : tuple of str
        The annotation keys whose audio is checked (default: train, dev
        and test).

    Returns
    -------
    tuple
        ``(hparams, run_opts)``.
    """
    hparams, run_opts, hparams_file, overrides = start(
        argv, prepare_corpus, check
    )
    if fold is None:
        fold = hparams["fold"]
    if fold == "all" or "," in str(fold):
        raise ValueError("build() trains one fold; main() runs them all")
    if fold is not None:
        fold = str(fold)
        run = fold_run(hparams["output_folder"], fold)
        run_on_main(
            write_fold_manifests,
            kwargs={"hparams": {**hparams, **run}, "fold": fold},
        )
        hparams = load_hparams(hparams_file, {**overrides, **run})[0]
    check_audio(hparams, audio)
    return hparams, run_opts
