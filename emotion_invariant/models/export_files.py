"""The files an export writes into a model folder besides the trained
ones: ``hyperparams.yaml`` (the run's modules, a frozen-layer run's, or the
encoder wrapped with a back-end), and a back-end's files.

A back-end (``--backend BACKEND.npz``) is read and checked to map this
model's embeddings (:func:`read_backend`), then the encoder is wrapped in
:class:`~emotion_invariant.backend.module.EmbeddingWithBackend`, whose
checkpoint holds the back-end's map (:func:`write_backend_files`).
"""

import os
import pathlib

import torch
from hyperpyyaml import load_hyperpyyaml

from emotion_invariant.backend import BackendError, load_backend
from emotion_invariant.backend.module import (
    EmbeddingWithBackend,
    NoClassifier,
    affine_form,
)
from emotion_invariant.emotion.layer_model import export_modules
from emotion_invariant.models.folder import (
    LOADABLES,
    TASKS,
    ExportError,
    identity_statistics,
    new_entry,
    yaml_text,
)
from emotion_invariant.models.pretrained import (
    PretrainedError,
    load_pretrained_ecapa,
)


def backend_module_config(encoder, backend):
    """The ``embedding_model`` entry of a model folder with a back-end: the
    encoder's entry wrapped in :class:`EmbeddingWithBackend`.

    Arguments
    ---------
    encoder : dict
        The encoder's entry (a ruamel mapping tagged ``!new:``).
    backend : emotion_invariant.backend.base.Backend
        The back-end, fitted on the encoder's embeddings.
    """
    projection, _ = affine_form(backend)
    return new_entry(
        EmbeddingWithBackend,
        encoder=encoder,
        input_size=int(projection.shape[0]),
        output_size=int(projection.shape[1]),
        kind=backend.kind,
    )


def hyperparams_text(
    cfg,
    task,
    n_classes,
    global_norm,
    threshold=None,
    backend=None,
    writer="python -m emotion_invariant.models.export",
    layers=None,
):
    """The exported ``hyperparams.yaml``.

    The modules are the run's own (their resolved settings), the head sized
    for ``n_classes``; the pretrainer names no paths, so SpeechBrain fetches
    ``<loadable>.ckpt`` from the ``source`` folder itself. With a
    ``backend``, the encoder is wrapped in :class:`EmbeddingWithBackend`
    and the head is a :class:`NoClassifier` with no file. ``layers``, the
    grid point a frozen-layer emotion run chose, makes the modules those
    of :func:`~emotion_invariant.emotion.layer_model.export_modules`.
    """
    embedding_model = cfg["embedding_model"]
    if layers is not None:
        (embedding, e_args), (classifier, c_args) = export_modules(
            cfg, layers, n_classes
        )
        embedding_model = new_entry(embedding, **e_args)
        head = new_entry(classifier, **c_args)
    elif backend is not None:
        head = new_entry(NoClassifier, kind=backend.kind)
    else:
        head = cfg[TASKS[task]["head"]]
        if task == "speaker":
            head["out_neurons"] = n_classes
        else:
            head[-1]["out_features"] = n_classes
    parts = [
        f"# Written by {writer}:\n"
        "# SpeechBrain's published layout. Every file is fetched from the\n"
        "# folder passed as `source` to from_hparams (no pretrained_path,\n"
        "# no hub).\n",
        "# What the model recognises: speaker or emotion.\n"
        + yaml_text({"task": task}),
        yaml_text({"sample_rate": cfg.get("sample_rate", 16000)}),
    ]
    if threshold is not None:
        parts.append(
            "# Cosine threshold at the dev speakers' EER (used by\n"
            "# python -m emotion_invariant.scoring.verify).\n"
            + yaml_text({"threshold": round(float(threshold), 6)})
        )
    for name in ("compute_features", "mean_var_norm"):
        parts.append(yaml_text({name: cfg[name]}))
    loadables = list(LOADABLES) + ["mean_var_norm"] * global_norm
    if backend is None:
        parts.append(yaml_text({"embedding_model": embedding_model}))
        parts.append(yaml_text({"classifier": head}))
    else:
        encoder = backend_module_config(cfg["embedding_model"], backend)
        parts.append(
            "# The encoder's embeddings mapped by the back-end in\n"
            "# backend.npz, whose map embedding_model.ckpt holds.\n"
            + yaml_text({"embedding_model": encoder})
        )
        parts.append(
            "# The speaker head scored the embeddings the back-end\n"
            "# replaces: none here.\n" + yaml_text({"classifier": head})
        )
        loadables.remove("classifier")
    parts.append(
        "mean_var_norm_emb: "
        "!new:speechbrain.processing.features.InputNormalization\n"
        "    norm_type: global\n    std_norm: False\n\n"
        "modules:\n"
        + "".join(
            f"    {m}: !ref <{m}>\n"
            for m in (
                "compute_features",
                "mean_var_norm",
                "embedding_model",
                "mean_var_norm_emb",
                "classifier",
            )
        )
        + "\nlabel_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder"
        "\n\npretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer"
        "\n    loadables:\n"
        + "".join(f"        {m}: !ref <{m}>\n" for m in loadables)
    )
    return "\n".join(parts)


def write_backend_files(folder, backend, encoder_folder):
    """Write the files of a model folder with a back-end whose
    ``hyperparams.yaml`` (see :func:`hyperparams_text`) is in ``folder``.

    ``embedding_model.ckpt`` is the state of the wrapped encoder: the
    encoder's parameters read from ``encoder_folder``'s
    ``embedding_model.ckpt`` (checked against the module, and named there
    when it does not load), and the back-end's map;
    ``mean_var_norm_emb.ckpt`` statistics that change nothing in the
    back-end's space; ``backend.npz`` the back-end itself.

    Raises
    ------
    ExportError
        Naming ``encoder_folder``'s file when it does not load.
    """
    folder = pathlib.Path(folder)
    with open(folder / "hyperparams.yaml", encoding="utf-8") as f:
        model = load_hyperpyyaml(f)["embedding_model"]
    try:
        load_pretrained_ecapa(encoder_folder, model.encoder)
    except PretrainedError as err:
        raise ExportError(str(err)) from None
    model.set_backend(backend)
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    identity_statistics(
        folder / "mean_var_norm_emb.ckpt", model.projection.shape[1]
    )
    backend.save(folder / "backend.npz")


def read_backend(path, dim):
    """The back-end saved at ``path``, checked to fit in a model folder
    whose encoder gives ``dim``-d embeddings.

    Raises
    ------
    emotion_invariant.backend.BackendError
        For a missing or unreadable file, a back-end that is no map of the
        embeddings (PLDA), or one fitted on embeddings of another size.

    Example
    -------
    >>> read_backend("nowhere.npz", 192)
    Traceback (most recent call last):
    ...
    emotion_invariant.backend.base.BackendError: nowhere.npz: no such file
    """
    if not os.path.isfile(path):
        raise BackendError(f"{path}: no such file")
    backend = load_backend(path)
    check_backend(backend, dim, path)
    return backend


def check_backend(backend, dim, where):
    """Fail unless ``backend`` maps this model's ``dim``-d embeddings (see
    :func:`affine_form`); ``where`` names it in the message."""
    try:
        affine_form(backend)
    except BackendError as err:
        raise BackendError(f"{where}: {err}") from None
    if backend.dim != dim:
        raise BackendError(
            f"{where}: fitted on {backend.dim}-d embeddings, this model's "
            f"are {dim}-d (fitted on another model's embeddings?)"
        )
