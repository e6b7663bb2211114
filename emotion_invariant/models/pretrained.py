"""Offline loading of a pretrained ECAPA-TDNN speaker model.

Reads either a local folder laid out like SpeechBrain's published ECAPA model
(``embedding_model.ckpt``, ``classifier.ckpt``, ``mean_var_norm_emb.ckpt``,
``label_encoder.txt``) or a folder of ``Checkpointer`` checkpoints, and loads
the state dicts into modules built by the caller. The published
``hyperparams.yaml`` points its ``pretrained_path`` at a hub id, so it is
never read: nothing here can reach for the network.
"""

import copy
import logging
import os
import pathlib

import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    Checkpointer,
    hook_on_loading_state_dict_checkpoint,
)

from emotion_invariant.atomic import atomic_path
from emotion_invariant.messages import shorten

logger = logging.getLogger(__name__)

DEFAULT_NAMES = {
    "embedding_model": "embedding_model.ckpt",
    "classifier": "classifier.ckpt",
    "mean_var_norm_emb": "mean_var_norm_emb.ckpt",
    "label_encoder": "label_encoder.txt",
}
#: Other names a role's file has in published folders: SpeechBrain's older
#: name for the label encoder's text file.
ALTERNATIVE_NAMES = {"label_encoder": ("label_encoder.ckpt",)}
NORM_KEYS = ("count", "glob_mean", "glob_std")
#: The encoder file a pretraining run writes.
ENCODER_FILE = "encoder.ckpt"


class PretrainedError(ValueError):
    """A pretrained folder or checkpoint that cannot be loaded as asked."""


def _listing(folder):
    names = sorted(os.listdir(folder))
    return ", ".join(names) if names else "nothing"


def resolve_checkpoint_dir(
    folder, min_key=None, max_key=None, marker=DEFAULT_NAMES["embedding_model"]
):
    """The folder holding the parameter files to load.

    ``folder`` itself when it holds ``marker`` (a published model or one
    ``CKPT+...`` folder); otherwise the ``CKPT+...`` subfolder that
    SpeechBrain's ``Checkpointer`` would recover: the newest, or the best by
    ``min_key`` / ``max_key`` in its ``CKPT.yaml``.

    Arguments
    ---------
    folder : str or os.PathLike
        Model folder or checkpoints folder.
    min_key : str, optional
        Pick the checkpoint with the lowest value of this meta key.
    max_key : str, optional
        Pick the checkpoint with the highest value of this meta key.
    marker : str
        The file whose presence makes ``folder`` a model folder itself.

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> import tempfile
    >>> resolve_checkpoint_dir(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.models.pretrained.PretrainedError: ...: no \
embedding_model.ckpt and no CKPT+* checkpoint folder (found: nothing)
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise PretrainedError(f"pretrained model folder not found: {folder}")
    if (folder / marker).is_file():
        return folder
    try:
        ckpt = Checkpointer(folder).find_checkpoint(
            min_key=min_key, max_key=max_key
        )
    except Exception as err:  # yaml, KeyError or TypeError from meta files
        raise PretrainedError(
            f"{folder}: cannot read the checkpoint metadata: "
            f"{type(err).__name__}: {err}"
        ) from err
    if ckpt is None:
        if any(p.name.startswith(CKPT_PREFIX) for p in folder.iterdir()):
            key = min_key or max_key
            detail = f" with meta key {key!r}" if key else ""
            raise PretrainedError(
                f"{folder}: no usable {CKPT_PREFIX}+* checkpoint{detail} "
                f"(found: {_listing(folder)})"
            )
        raise PretrainedError(
            f"{folder}: no {marker} and no "
            f"{CKPT_PREFIX}+* checkpoint folder (found: {_listing(folder)})"
        )
    return ckpt.path


def _read(path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle, zip and torch errors all land here
        text = str(err)
        if "weights_only" in text:
            # torch advises loading with weights_only=False, which runs
            # whatever code the file holds: that advice is never passed on.
            raise PretrainedError(
                f"cannot read {path}: not a valid checkpoint (not a state dict "
                "of tensors saved with torch.save: corrupt, or another format)"
            ) from None
        reason = text.splitlines()[0] if text else type(err).__name__
        raise PretrainedError(
            f"cannot read {path}: not a valid checkpoint ({reason})"
        ) from err


def _check_state(path, module, strict, allow_mismatch):
    state = _read(path)
    if not isinstance(state, dict):
        raise PretrainedError(
            f"{path}: expected a state dict, found {type(state).__name__}"
        )
    state = hook_on_loading_state_dict_checkpoint(dict(state))
    own = module.state_dict()
    mismatched = [
        f"{key}: checkpoint {tuple(value.shape)} vs model "
        f"{tuple(own[key].shape)}"
        for key, value in state.items()
        if key in own
        and isinstance(value, torch.Tensor)
        and value.shape != own[key].shape
    ]
    if mismatched:
        message = f"{path}: shape mismatch for " + "; ".join(mismatched[:3])
        if len(mismatched) > 3:
            message += (
                f" (+{len(mismatched) - 3} more; {len(mismatched)} "
                "tensors differ: is this checkpoint of another model size?)"
            )
        if allow_mismatch:
            logger.warning("%s; left at its initial values", message)
            return None
        raise PretrainedError(message)
    missing = [key for key in own if key not in state]
    unexpected = [key for key in state if key not in own]
    if missing or unexpected:
        message = f"{path}: " + "; ".join(
            f"{what} key(s) {shorten(keys, 8)}"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        )
        if strict:
            raise PretrainedError(message)
        logger.warning("%s; loading the rest (strict=False)", message)
    return lambda: module.load_state_dict(state, strict=False)


def _check_norm(path, module):
    state = _read(path)
    if not isinstance(state, dict):
        state = {}
    missing = [key for key in NORM_KEYS if key not in state]
    if missing:
        raise PretrainedError(
            f"{path}: not normalisation statistics, missing "
            f"{', '.join(missing)}"
        )
    device = getattr(module, "device", "cpu")
    stats = {
        key: value.to(device) if isinstance(value, torch.Tensor) else value
        for key, value in state.items()
    }
    return lambda: module._load_statistics_dict(stats)


def _check_encoder(path, encoder):
    try:
        copy.deepcopy(encoder).load(path)
    except Exception as err:  # literal_eval and parsing errors
        raise PretrainedError(
            f"cannot read {path}: {type(err).__name__}: {err}"
        ) from err
    return lambda: encoder.load(path)


def _find(ckpt_dir, root, role, names):
    name = names[role]
    candidates = [name]
    if name == DEFAULT_NAMES[role]:
        candidates += ALTERNATIVE_NAMES.get(role, ())
    folders = list(dict.fromkeys((ckpt_dir, root)))
    for candidate in candidates:
        for folder in folders:
            if (folder / candidate).is_file():
                return folder / candidate
    where = " or ".join(str(f) for f in folders)
    raise PretrainedError(
        f"{name} not found in {where} for {role} "
        f"(found in {ckpt_dir}: {_listing(ckpt_dir)})"
    )


def load_pretrained_ecapa(
    folder,
    embedding_model,
    classifier=None,
    mean_var_norm_emb=None,
    label_encoder=None,
    strict=True,
    skip_classifier_mismatch=False,
    min_key=None,
    max_key=None,
    names=None,
):
    """Load a local pretrained ECAPA model into the given modules, offline.

    Each given object needs its file; files of objects not given are
    ignored. Parameter files are read with ``torch.load(map_location="cpu",
    weights_only=True)`` and checked against the module before loading:
    shape mismatches name the tensor and both shapes, missing and
    unexpected keys are named. ``label_encoder.txt`` is looked up in the
    checkpoint folder, then in ``folder`` (where SpeechBrain recipes keep
    it), then under the published model's name ``label_encoder.ckpt``.

    Arguments
    ---------
    folder : str or os.PathLike
        A published-style model folder, a ``CKPT+...`` folder or a folder of
        them (see :func:`resolve_checkpoint_dir`).
    embedding_model : torch.nn.Module
        E.g. ``speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN``.
    classifier : torch.nn.Module, optional
        E.g. ``speechbrain.lobes.models.ECAPA_TDNN.Classifier``.
    mean_var_norm_emb : speechbrain.processing.features.InputNormalization
        Optional embedding normalisation statistics.
    label_encoder : speechbrain.dataio.encoder.CategoricalEncoder, optional
        Speaker label encoder.
    strict : bool
        Fail on missing or unexpected keys (otherwise log them and load the
        rest). Shape mismatches always fail, except below.
    skip_classifier_mismatch : bool
        Leave a classifier whose shapes differ (another number of speakers)
        at its initial values, with a warning.
    min_key, max_key : str, optional
        Choose among ``CKPT+...`` folders by this meta key, as
        ``Checkpointer.recover_if_possible`` does.
    names : dict, optional
        Overrides file names per role (keys of :data:`DEFAULT_NAMES`).

    Returns
    -------
    dict
        ``path``: the folder loaded from; ``loaded`` and ``skipped``: the
        roles loaded and the roles left at their initial values.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> torch.save(torch.nn.Linear(3, 2).state_dict(),
    ...            os.path.join(folder, "embedding_model.ckpt"))
    >>> model = torch.nn.Linear(3, 2)
    >>> load_pretrained_ecapa(folder, model)["loaded"]
    ['embedding_model']
    >>> load_pretrained_ecapa(folder, torch.nn.Linear(4, 2))
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.models.pretrained.PretrainedError: \
.../embedding_model.ckpt: shape mismatch for weight: \
checkpoint (2, 3) vs model (2, 4)
    """
    names = {**DEFAULT_NAMES, **(names or {})}
    unknown = sorted(set(names) - set(DEFAULT_NAMES))
    if unknown:
        raise PretrainedError(
            f"names: unknown role(s) {', '.join(unknown)}; expected "
            + ", ".join(DEFAULT_NAMES)
        )
    root = pathlib.Path(folder)
    ckpt_dir = resolve_checkpoint_dir(
        root, min_key, max_key, names["embedding_model"]
    )
    result = {"path": str(ckpt_dir), "loaded": [], "skipped": []}
    modules = {
        "embedding_model": embedding_model,
        "classifier": classifier,
        "mean_var_norm_emb": mean_var_norm_emb,
        "label_encoder": label_encoder,
    }
    # check everything before loading anything: a failure leaves every
    # module as it was
    loaders = {}
    for role, obj in modules.items():
        if obj is None:
            continue
        path = _find(ckpt_dir, root, role, names)
        if role == "label_encoder":
            loaders[role] = _check_encoder(path, obj)
        elif hasattr(obj, "_load_statistics_dict"):
            loaders[role] = _check_norm(path, obj)
        else:
            loaders[role] = _check_state(
                path,
                obj,
                strict,
                allow_mismatch=role == "classifier"
                and skip_classifier_mismatch,
            )
    files = []
    for role, load in loaders.items():
        if load is None:
            result["skipped"].append(role)
        else:
            load()
            result["loaded"].append(role)
            files.append(_find(ckpt_dir, root, role, names).name)
    logger.info(
        "loaded %s from %s (%s)",
        ", ".join(files),
        ckpt_dir,
        _speakers(ckpt_dir, root, names),
    )
    return result


def _speakers(ckpt_dir, root, names):
    """How many speakers the pretrained model was trained on, in words."""
    try:
        path = _find(ckpt_dir, root, "label_encoder", names)
        encoder = CategoricalEncoder()
        encoder.load(path)
    except Exception:  # no label encoder, or not one: not worth failing
        return "number of training speakers unknown: no label encoder"
    return f"trained on {len(encoder)} speakers"


def save_encoder(embedding_model, path):
    """Write an encoder's state dict to ``path`` (an ``encoder.ckpt``),
    atomically: what :func:`load_pretrained_encoder` reads.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), ENCODER_FILE)
    >>> save_encoder(torch.nn.Linear(2, 2), path)
    >>> sorted(torch.load(path))
    ['bias', 'weight']
    """
    with atomic_path(path) as tmp:
        torch.save(embedding_model.state_dict(), tmp)


def load_pretrained_encoder(path, embedding_model):
    """Initialise an encoder from pretraining, offline.

    Arguments
    ---------
    path : str
        An ``encoder.ckpt`` (a state dict), a pretraining output folder
        holding one, or a folder :func:`load_pretrained_ecapa` reads
        (``embedding_model.ckpt``, or ``CKPT+*``
        checkpoints such as the pretraining ``save`` folder).
    embedding_model : torch.nn.Module
        The encoder, of the sizes it was pretrained with.

    Returns
    -------
    str
        The file or checkpoint folder loaded.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.ckpt")
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> model = torch.nn.Linear(2, 2)
    >>> load_pretrained_encoder(path, model) == path
    True
    >>> torch.equal(model.weight, torch.load(path)["weight"])
    True
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, ENCODER_FILE)):
        path = os.path.join(path, ENCODER_FILE)
    if os.path.isfile(path):
        names = {"embedding_model": os.path.basename(path)}
        load_pretrained_ecapa(
            os.path.dirname(os.path.abspath(path)), embedding_model, names=names
        )
        return path
    return load_pretrained_ecapa(path, embedding_model)["path"]


def pretraining_norm_type(path):
    """The ``norm_type`` of the pretraining run that wrote ``path`` (its
    ``encoder.ckpt``, output folder, ``save`` folder or a checkpoint in it),
    read from that run's ``hyperparams.yaml``; None where there is none.

    Example
    -------
    >>> import tempfile
    >>> run = tempfile.mkdtemp()
    >>> with open(os.path.join(run, "hyperparams.yaml"), "w") as f:
    ...     _ = f.write("seed: 1\\nnorm_type: sentence\\n")
    >>> pretraining_norm_type(os.path.join(run, "encoder.ckpt"))
    'sentence'
    >>> pretraining_norm_type(tempfile.mkdtemp()) is None
    True
    """
    folder = os.path.abspath(path)
    for _ in range(3):  # encoder.ckpt, save/CKPT+*/ or the folder itself
        if os.path.isdir(folder):
            yaml = os.path.join(folder, "hyperparams.yaml")
            if os.path.isfile(yaml):
                with open(yaml, encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("norm_type:"):
                            return line.split(":", 1)[1].strip()
                return None
        folder = os.path.dirname(folder)
    return None


def warn_other_norm(path, norm_type):
    """Log a warning when the pretraining run behind ``path`` normalised
    its features otherwise than ``norm_type``; returns whether it did.

    Fine-tuning on features normalised unlike the pretraining's is allowed,
    but rarely meant: the warning says which ``--norm_type`` to pass.

    Example
    -------
    >>> import tempfile
    >>> warn_other_norm(tempfile.mkdtemp(), "sentence")
    False
    """
    pretrained = pretraining_norm_type(path)
    if pretrained in (None, norm_type):
        return False
    logger.warning(
        f"{path} was pretrained with norm_type: {pretrained}, this run uses "
        f"norm_type: {norm_type}; pass --norm_type={pretrained} to "
        "fine-tune on the features the encoder learned from"
    )
    return True
