"""Export a trained run as a model folder in SpeechBrain's published layout.

A run of ``recipes/speaker_verification`` becomes a folder that
``speechbrain.inference.speaker.SpeakerRecognition.from_hparams(source=OUT,
savedir=...)`` loads, offline, like SpeechBrain's ``spkrec-ecapa-voxceleb``;
a run of ``recipes/emotion_recognition`` one that
``speechbrain.inference.classifiers.EncoderClassifier`` loads, whose
``classify_file`` returns this project's emotion labels. The folder holds::

    hyperparams.yaml          the modules, and a pretrainer with no paths:
                              every file comes from the folder given as
                              ``source``, under SpeechBrain's default names
    embedding_model.ckpt      the encoder of the chosen checkpoint
    classifier.ckpt           the speaker (AAM) or emotion head
    mean_var_norm.ckpt        fbank statistics (global normalisation only)
    mean_var_norm_emb.ckpt    embedding statistics: zero mean, unit std (the
                              recipes do not normalise embeddings)
    label_encoder.txt         training speakers, or emotions
    label_encoder.ckpt        the same file under the name the pretrainer
                              fetches by default
    README.md                 model card: corpus, switches, results, licence

``hyperparams.yaml`` names the model's ``task`` (``speaker`` or
``emotion``); a speaker model's also stores the cosine threshold at the dev
speakers' EER (``threshold``), which ``python -m
emotion_invariant.scoring.verify`` decides with.

With ``--backend BACKEND.npz`` (a back-end fitted on this model's
embeddings, see :mod:`emotion_invariant.backend`), the model applies it:
``embedding_model`` is the encoder wrapped in
:class:`~emotion_invariant.backend.module.EmbeddingWithBackend`, whose
checkpoint holds the back-end's map, so SpeechBrain's inference embeds in
the back-end's space and the threshold is the dev EER's there. The folder
then has no ``classifier.ckpt`` (the speaker head scored the embeddings
the back-end replaces) and holds ``backend.npz`` for the scoring command.

Nothing is published unloaded: the folder is written next to ``OUT`` under
a temporary name, every parameter file in it is loaded into the modules its
``hyperparams.yaml`` builds, then SpeechBrain's inference class loads the
folder, offline, as a user would, and embeds one second of synthetic audio,
which must give finite numbers (``hyperparams.yaml`` then only gains the
threshold); only then is the folder renamed to ``OUT``.
A damaged file is named as it is in the run. The run folder (and, for a
fold, the output folder holding its ``hyperparams.yaml``) and ``OUT`` are
locked while exporting (:mod:`emotion_invariant.runlock`), so a run still
being written by its training is refused, naming the process.

The pieces live beside this module: the run's and the folder's files
(:mod:`~emotion_invariant.models.folder`), ``hyperparams.yaml`` and a
back-end's files (:mod:`~emotion_invariant.models.export_files`), the
checks before publishing (:mod:`~emotion_invariant.models.export_check`)
and the model card (:mod:`~emotion_invariant.models.model_card`); their
public names can be imported from here too.

Usage::

    python -m emotion_invariant.models.export RUN_FOLDER OUT_FOLDER \\
        [--checkpoint best|last|CKPT_FOLDER] [--backend BACKEND.npz]
"""

import argparse
import contextlib
import errno
import os
import pathlib
import shutil
import sys
import tempfile

from emotion_invariant.emotion.layer_model import (
    read_selection_file,
    write_model_files,
)
from emotion_invariant.models.export_check import check_export, dev_threshold
from emotion_invariant.models.export_files import (
    backend_module_config,
    check_backend,
    hyperparams_text,
    read_backend,
    write_backend_files,
)
from emotion_invariant.models.folder import (
    LOADABLES,
    TASKS,
    ExportError,
    choose_checkpoint,
    identity_statistics,
    read_config,
    read_run_config,
    run_config_path,
    run_labels,
    write_label_encoder,
)
from emotion_invariant.models.model_card import backend_card, model_card
from emotion_invariant.models.pretrained import PretrainedError
from emotion_invariant.runlock import (
    LOCK_NAME,
    RunFolderLocked,
    acquire_run_lock,
    lock_holder,
)


def _lock(stack, folder):
    """Hold ``folder``'s run lock until ``stack`` closes.

    A folder this process cannot write (a colleague's read-only results)
    can take no lock file: it is only checked for a live holder.
    """
    try:
        stack.enter_context(acquire_run_lock(folder, "export"))
        return
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
    holder = lock_holder(folder)
    if holder is not None:
        raise RunFolderLocked(
            f"{folder} is in use by pid {holder['pid']} ({holder['command']})"
            f" since {holder['since']}; wait for it to end or stop it"
        )


def _remove_if_empty(folder):
    with contextlib.suppress(OSError):
        os.rmdir(folder)


def _publish(tmp, out, lock):
    """Rename the checked folder ``tmp`` to ``out``, the empty folder whose
    lock this export holds, in one step."""
    # Releasing removes out's lock file: a rename replaces an empty folder
    # only.
    lock.release()
    try:
        os.rename(tmp, out)
    except OSError as err:
        if err.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        raise ExportError(
            f"{out}: another process wrote into it meanwhile; nothing was "
            "exported"
        ) from None


def export(run_folder, out_folder, checkpoint="best", backend=None):
    """Write a trained run as a model folder in SpeechBrain's layout.

    Arguments
    ---------
    run_folder : str or os.PathLike
        The output folder of a speaker-verification or emotion-recognition
        run (a fold's ``fold_K`` folder for a fold).
    out_folder : str or os.PathLike
        The model folder to create; it must not exist.
    checkpoint : str
        ``best``, ``last`` or a ``CKPT+...`` folder.
    backend : str or os.PathLike, optional
        A back-end (``.npz``) fitted on this model's embeddings, for the
        model to apply (speaker models only).

    Returns
    -------
    dict
        ``task``, ``checkpoint`` and ``threshold`` (None where not stored).

    Raises
    ------
    ExportError
        For a folder that is no run, a missing or damaged file (named as
        it is in the run), or an existing ``out_folder``; nothing is left.
    emotion_invariant.backend.BackendError
        For a back-end that cannot be built into the model.
    RunFolderLocked
        When a live process holds the run folder or ``out_folder``.
    """
    run, out = pathlib.Path(run_folder), pathlib.Path(out_folder)
    if out.exists():
        raise ExportError(f"{out}: already exists; choose a new folder")
    if not run.is_dir():
        raise ExportError(f"{run}: no such folder")
    with contextlib.ExitStack() as stack:
        for folder in dict.fromkeys((run, run_config_path(run).parent)):
            _lock(stack, folder)
        result = _export(run, out, checkpoint, backend, stack)
    return result


def _export(run, out, checkpoint, backend_path, stack):
    """:func:`export` once the run folder is locked; ``stack`` holds the
    locks, and takes ``out``'s too."""
    cfg = read_run_config(run)
    task = "emotion" if "emotion_classifier" in cfg else "speaker"
    dim = int(cfg["embedding_model"]["lin_neurons"])
    # A frozen-layer emotion run: the grid point it chose, its checkpoints.
    selection = point = save = None
    if cfg.get("frozen_layers"):
        try:
            selection, point, save = read_selection_file(run)
        except ValueError as err:
            raise ExportError(str(err)) from None
        dim = int(cfg["layer_dim"])
    backend = None
    if backend_path is not None:
        if task != "speaker":
            raise ExportError(
                f"{run}: an {task} model; a back-end applies to speaker "
                "models only"
            )
        backend = read_backend(backend_path, dim)
    ckpt = choose_checkpoint(run, checkpoint, task, save)
    global_norm = cfg["mean_var_norm"].get("norm_type") == "global"
    sources = {
        "embedding_model.ckpt": ckpt / "embedding_model.ckpt",
        "classifier.ckpt": ckpt / f"{TASKS[task]['head']}.ckpt",
    }
    if global_norm:
        sources["mean_var_norm.ckpt"] = ckpt / "normalizer.ckpt"
    if point is not None:
        # Every file is built from the head's and the pretrained encoder's.
        sources = {"classifier.ckpt": ckpt / "layer_head.ckpt"}
    for path in sources.values():
        if not path.is_file():
            raise ExportError(f"{path}: missing from the checkpoint")
    encoder = run_labels(run, cfg, task)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Taking out's lock creates the folder: removed again, once the lock is
    # released, unless the export was renamed onto it.
    stack.callback(_remove_if_empty, out)
    out_lock = stack.enter_context(acquire_run_lock(out, "export"))
    if set(os.listdir(out)) != {LOCK_NAME}:
        raise ExportError(f"{out}: already exists; choose a new folder")
    tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    # With a back-end, the encoder's file is written wrapped, and the head
    # has no place (see write_backend_files).
    copied = [
        name
        for name in sources
        if (backend is None and point is None) or name == "mean_var_norm.ckpt"
    ]
    try:
        for name in copied:
            shutil.copyfile(sources[name], tmp / name)
        write_label_encoder(tmp, encoder)
        text = hyperparams_text(
            cfg, task, len(encoder), global_norm, backend=backend, layers=point
        )
        (tmp / "hyperparams.yaml").write_text(text, encoding="utf-8")
        if backend is None:
            identity_statistics(tmp / "mean_var_norm_emb.ckpt", dim)
        else:
            write_backend_files(tmp, backend, ckpt)
        if point is not None:
            try:
                write_model_files(tmp, cfg, ckpt, selection)
            except (PretrainedError, ValueError) as err:
                raise ExportError(str(err)) from None
        model = check_export(tmp, task, sources)
        threshold = None
        if task == "speaker":
            threshold = dev_threshold(model, cfg)
            if threshold is not None:
                text = hyperparams_text(
                    cfg, task, len(encoder), global_norm, threshold, backend
                )
                (tmp / "hyperparams.yaml").write_text(text, encoding="utf-8")
        card = model_card(run, cfg, task, ckpt, threshold, backend)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        _publish(tmp, out, out_lock)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"task": task, "checkpoint": str(ckpt), "threshold": threshold}


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.models.export",
        description="Export a trained run as a SpeechBrain model folder.",
    )
    parser.add_argument("run_folder", help="the run's output folder")
    parser.add_argument("out_folder", help="the model folder to create")
    parser.add_argument(
        "--checkpoint",
        default="best",
        help="best (by dev EER or UA, as the recipe), last, or a "
        "CKPT+... folder",
    )
    parser.add_argument(
        "--backend",
        help="a back-end (.npz, python -m emotion_invariant.backend fit) "
        "fitted on this model's embeddings, for the model to apply",
    )
    args = parser.parse_args(argv)
    try:
        result = export(
            args.run_folder, args.out_folder, args.checkpoint, args.backend
        )
    except (ValueError, OSError, RunFolderLocked) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    threshold = result["threshold"]
    print(
        f"{result['task']} model from {result['checkpoint']} -> "
        f"{args.out_folder}"
        + (f" (threshold {threshold:.4f})" if threshold is not None else "")
    )
    return 0


__all__ = [
    "LOADABLES",
    "TASKS",
    "ExportError",
    "backend_card",
    "backend_module_config",
    "check_backend",
    "check_export",
    "choose_checkpoint",
    "dev_threshold",
    "export",
    "hyperparams_text",
    "identity_statistics",
    "main",
    "model_card",
    "read_backend",
    "read_config",
    "read_run_config",
    "run_config_path",
    "run_labels",
    "write_backend_files",
    "write_label_encoder",
]


if __name__ == "__main__":
    sys.exit(main())
