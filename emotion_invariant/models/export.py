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

Usage::

    python -m emotion_invariant.models.export RUN_FOLDER OUT_FOLDER \\
        [--checkpoint best|last|CKPT_FOLDER] [--backend BACKEND.npz]
"""

import argparse
import contextlib
import errno
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile

import ruamel.yaml
import torch
from hyperpyyaml import load_hyperpyyaml, resolve_references
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.tag import Tag
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.checkpoints import Checkpointer

from emotion_invariant.backend import BackendError, load_backend
from emotion_invariant.backend.module import (
    EmbeddingWithBackend,
    NoClassifier,
    affine_form,
)
from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.data.trials import make_trials
from emotion_invariant.emotion.layer_model import (
    enrol_speaker,
    export_modules,
    read_selection_file,
    write_model_files,
)
from emotion_invariant.models.pretrained import (
    PretrainedError,
    load_pretrained_ecapa,
)
from emotion_invariant.runlock import (
    LOCK_NAME,
    RunFolderLocked,
    acquire_run_lock,
    lock_holder,
)
from emotion_invariant.scoring.extract import extract_embeddings
from emotion_invariant.scoring.metrics import eer
from emotion_invariant.scoring.pipeline import score_trials

#: Per task: the head's module name in the recipe, the checkpoint meta key
#: the recipe selects by (and whether lower is better), SpeechBrain's
#: inference class and the method switches shown in the model card.
TASKS = {
    "speaker": {
        "head": "classifier",
        "key": "EER",
        "lower": True,
        "interface": "speechbrain.inference.speaker.SpeakerRecognition",
        "switches": (
            "copypaste_prob",
            "copypaste_segment",
            "erl_weight",
            "erl_target",
            "mask_ratio",
            "aam_weight",
            "supcon_weight",
            "speakers_per_batch",
            "pretrained_path",
            "freeze_blocks",
            "emotion_nap_dims",
        ),
    },
    "emotion": {
        "head": "emotion_classifier",
        "key": "UA",
        "lower": False,
        "interface": "speechbrain.inference.classifiers.EncoderClassifier",
        "switches": (
            "adv_weight",
            "entropy_weight",
            "grl_lambda",
            "norm_type",
            "class_balanced",
            "pretrained_encoder",
            "label_fraction",
            "frozen_layers",
            "speaker_norm",
        ),
    },
}
LOADABLES = (
    "embedding_model",
    "classifier",
    "mean_var_norm_emb",
    "label_encoder",
)


class ExportError(ValueError):
    """A run folder or checkpoint that cannot be exported as asked."""


def run_config_path(run_folder):
    """The run's ``hyperparams.yaml``: in ``run_folder``, else its parent
    (a fold's run folder sits in the output folder that holds the file).

    Example
    -------
    >>> import tempfile
    >>> run_config_path(tempfile.mkdtemp())  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.models.export.ExportError: ...: no hyperparams.yaml \
here or in its parent: not the output folder of a recipe run
    """
    run = pathlib.Path(run_folder)
    for folder in (run, run.parent):
        path = folder / "hyperparams.yaml"
        if path.is_file():
            return path
    raise ExportError(
        f"{run}: no hyperparams.yaml here or in its parent: not the "
        "output folder of a recipe run"
    )


def read_run_config(run_folder):
    """The run's ``hyperparams.yaml`` (see :func:`run_config_path`) with
    every reference resolved. Nothing is instantiated.

    Returns
    -------
    dict
        A ruamel mapping; module entries keep their ``!new:`` tags.
    """
    return read_config(run_config_path(run_folder))


def read_config(path):
    """A ``hyperparams.yaml`` with every reference resolved, uninstantiated
    (a ruamel mapping whose module entries keep their ``!new:`` tags).

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "hyperparams.yaml")
    >>> _ = open(path, "w").write("n: 8\\nf: !new:F\\n    n: !ref <n>\\n")
    >>> cfg = read_config(path)
    >>> cfg["f"].tag.value, cfg["f"]["n"]
    ('!new:F', 8)
    """
    with open(path, encoding="utf-8") as f:
        text = resolve_references(f).getvalue()
    return ruamel.yaml.YAML().load(text)


def choose_checkpoint(run_folder, checkpoint, task, save=None):
    """The ``CKPT+...`` folder to export.

    Arguments
    ---------
    run_folder : str or os.PathLike
        The run's output folder (with ``save/``).
    checkpoint : str
        ``best`` (the recipe's choice: lowest dev EER, highest dev UA),
        ``last`` (the newest) or a checkpoint folder.
    task : str
        A key of :data:`TASKS`.
    save : str or os.PathLike, optional
        The checkpoints folder (default: the run's ``save``).

    Returns
    -------
    pathlib.Path

    Example
    -------
    >>> import tempfile
    >>> choose_checkpoint(tempfile.mkdtemp(), "best", "speaker")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.models.export.ExportError: .../save: no checkpoint...
    """
    if checkpoint not in ("best", "last"):
        path = pathlib.Path(checkpoint)
        if not (path / "CKPT.yaml").is_file():
            raise ExportError(f"{path}: not a checkpoint folder")
        return path
    save = pathlib.Path(save or pathlib.Path(run_folder) / "save")
    key = TASKS[task]["key"]
    if checkpoint == "last":
        keys = {}
    elif TASKS[task]["lower"]:
        keys = {"min_key": key}
    else:
        keys = {"max_key": key}
    found = None
    if save.is_dir():
        found = Checkpointer(save).find_checkpoint(**keys)
    if found is None:
        raise ExportError(f"{save}: no checkpoint to export")
    return found.path


def _plain_style(node):
    """Drop the run's comments; write lists of numbers and the arguments
    of modules listed in a list (an MLP head) in flow style.

    hyperpyyaml re-emits the file to resolve references, and garbles a
    module in a list whose arguments are a block mapping.
    """
    if hasattr(node, "ca"):
        node.ca.items.clear()
        node.ca.comment = None
        node.ca.end = None
    if isinstance(node, list):
        tagged = getattr(getattr(node, "tag", None), "value", None)
        if not tagged and hasattr(node, "fa"):
            node.fa.set_flow_style()
        for item in node:
            if isinstance(item, dict) and hasattr(item, "fa"):
                item.fa.set_flow_style()
    values = node.values() if isinstance(node, dict) else node
    if isinstance(node, (dict, list)):
        for value in values:
            _plain_style(value)
    return node


def _yaml_text(data):
    stream = io.StringIO()
    yaml = ruamel.yaml.YAML()
    yaml.indent(mapping=4, sequence=6, offset=4)
    yaml.dump(_plain_style(data), stream)
    return stream.getvalue()


def _labels(run_folder, cfg, task):
    if task == "speaker":
        path = pathlib.Path(run_folder) / "save" / "label_encoder.txt"
        if not path.is_file():
            raise ExportError(f"{path}: the run's speaker labels are missing")
        encoder = CategoricalEncoder()
        encoder.load(path)
        return encoder
    report = pathlib.Path(run_folder) / "eval" / "report.json"
    if not report.is_file():
        raise ExportError(
            f"{report}: missing; the emotion labels are read from the run's "
            "evaluation report (run recipes/emotion_recognition/evaluate.py)"
        )
    with open(report, encoding="utf-8") as f:
        labels = json.load(f).get("labels")
    if not labels:
        raise ExportError(f"{report}: no 'labels'")
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(labels)
    return encoder


def _new(cls, **arguments):
    """A yaml entry that builds ``cls`` with ``arguments`` (``!new:``)."""
    entry = CommentedMap(arguments.items())
    entry.yaml_set_ctag(Tag(suffix=f"!new:{cls.__module__}.{cls.__name__}"))
    return entry


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
    return _new(
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
        embedding_model = _new(embedding, **e_args)
        head = _new(classifier, **c_args)
    elif backend is not None:
        head = _new(NoClassifier, kind=backend.kind)
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
        + _yaml_text({"task": task}),
        _yaml_text({"sample_rate": cfg.get("sample_rate", 16000)}),
    ]
    if threshold is not None:
        parts.append(
            "# Cosine threshold at the dev speakers' EER (used by\n"
            "# python -m emotion_invariant.scoring.verify).\n"
            + _yaml_text({"threshold": round(float(threshold), 6)})
        )
    for name in ("compute_features", "mean_var_norm"):
        parts.append(_yaml_text({name: cfg[name]}))
    loadables = list(LOADABLES) + ["mean_var_norm"] * global_norm
    if backend is None:
        parts.append(_yaml_text({"embedding_model": embedding_model}))
        parts.append(_yaml_text({"classifier": head}))
    else:
        encoder = backend_module_config(cfg["embedding_model"], backend)
        parts.append(
            "# The encoder's embeddings mapped by the back-end in\n"
            "# backend.npz, whose map embedding_model.ckpt holds.\n"
            + _yaml_text({"embedding_model": encoder})
        )
        parts.append(
            "# The speaker head scored the embeddings the back-end\n"
            "# replaces: none here.\n" + _yaml_text({"classifier": head})
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


def identity_statistics(path, dim):
    """Write embedding statistics that change nothing (zero mean, unit
    std) for ``dim``-d embeddings: ``mean_var_norm_emb.ckpt``."""
    torch.save(
        {
            "count": 0,
            "glob_mean": torch.zeros(dim),
            "glob_std": torch.ones(dim),
        },
        path,
    )


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


def dev_threshold(model, cfg):
    """Cosine threshold at the EER of the run's dev trials, embedded with
    the exported model as SpeechBrain loads it; None without the dev data.

    The trials are those the recipe selected its checkpoint with.

    Arguments
    ---------
    model : speechbrain.inference.speaker.SpeakerRecognition
        The exported folder, loaded (see :func:`check_export`).
    cfg : dict
        The run's configuration (see :func:`read_run_config`).
    """
    manifest = cfg["valid_annotation"]
    if cfg.get("fold") is not None:
        manifest = os.path.join(
            cfg["manifest_folder"], f"fold_{cfg['fold']}", "dev.csv"
        )
    # Paths as the run recorded them: relative ones from where it started.
    if not (os.path.isfile(manifest) and os.path.isdir(cfg["data_folder"])):
        return None
    rows = read_manifest(manifest)
    trials = make_trials(
        rows, seed=0, max_per_condition=cfg["dev_trials_per_condition"]
    )
    ids, emb = extract_embeddings(
        rows,
        model.encode_batch,
        batch_size=cfg.get("eval_batch_size", 16),
        device="cpu",
        data_root=str(cfg["data_folder"]),
        sample_rate=cfg.get("sample_rate", 16000),
        progress=False,
    )
    scores = score_trials((ids, emb), trials, device="cpu")
    labels = torch.tensor([t[0] for t in trials])
    return eer(scores, labels)[1]


def backend_card(backend, fitted_on=None):
    """The model card's section on the back-end a model applies.

    Example
    -------
    >>> from emotion_invariant.backend import fit
    >>> nap = fit("within_speaker_nap", torch.eye(3).repeat(2, 1), [0, 1, 2]
    ...           * 2, dims=1)
    >>> "the `within_speaker_nap` back-end (`dims: 1`)" in backend_card(nap)[2]
    True
    """
    settings = ", ".join(
        f"`{k}: {v}`" for k, v in backend.settings.items() if k != "dim"
    )
    where = f", fitted on {fitted_on}" if fitted_on else ""
    return [
        "## Back-end",
        "",
        "The embeddings are those of the encoder mapped by the "
        f"`{backend.kind}` back-end ({settings or 'no settings'}){where}, so "
        "SpeechBrain's `encode_batch` and `verify_batch` apply it.",
        "`backend.npz` holds the back-end "
        "(`emotion_invariant.backend.load_backend`). The folder has no "
        "speaker classifier: the head scored the encoder's own embeddings.",
        "",
    ]


def model_card(run_folder, cfg, task, ckpt, threshold, backend=None):
    """README.md of the exported folder."""
    spec = TASKS[task]
    run = pathlib.Path(run_folder)
    meta = ckpt / "CKPT.yaml"
    chosen = meta.read_text().strip() if meta.is_file() else "(no meta)"
    lines = [
        f"# {cfg.get('experiment', task)}: "
        + ("speaker verification" if task == "speaker" else "emotion")
        + " model",
        "",
        f"Exported from `{run.name}` (checkpoint `{ckpt.name}`) by "
        "`python -m emotion_invariant.models.export`. Load it with "
        "SpeechBrain, offline:",
        "",
        "```python",
        f"from {spec['interface'].rsplit('.', 1)[0]} import "
        f"{spec['interface'].rsplit('.', 1)[1]}",
        f"model = {spec['interface'].rsplit('.', 1)[1]}.from_hparams("
        'source="THIS_FOLDER", savedir="pretrained_models/this_model")',
        "```",
        "",
        "## Training",
        "",
        f"- corpus: `{cfg.get('corpus')}` (data folder "
        f"`{os.path.basename(str(cfg.get('data_folder')).rstrip('/'))}`)",
        f"- checkpoint meta: `{' '.join(chosen.splitlines()[1:])}`",
        "- method switches: "
        + ", ".join(f"`{k}: {cfg[k]}`" for k in spec["switches"] if k in cfg),
    ]
    if threshold is not None:
        lines.append(f"- decision threshold (dev EER): `{threshold:.6f}`")
    if task == "speaker" and cfg.get("emotion_nap_dims"):
        lines.append(
            "- the results below removed emotion directions (NAP) from the "
            "embeddings before scoring; this model "
            + ("does not" if backend is None else "applies the back-end below")
        )
    lines.append("")
    if backend is not None:
        lines += backend_card(backend)
    report = run / "eval" / "report.md"
    lines += ["## Results (the run's evaluation report)", ""]
    if report.is_file():
        text = report.read_text(encoding="utf-8").strip()
        lines.append(text.replace("\n# ", "\n### ").replace("# ", "### ", 1))
    else:
        lines.append("No evaluation report in the run folder.")
    lines += [
        "",
        "## Licence",
        "",
        "Code: Apache-2.0. The weights were trained on the corpus above: "
        "its licence terms apply to them.",
        "",
    ]
    return "\n".join(lines)


def _in_run(message, folder, sources):
    """``message`` with the exported files' paths replaced by those of the
    run's files they were copied from."""
    for name, source in sources.items():
        message = message.replace(str(folder / name), str(source))
    return message


def check_export(folder, task, sources):
    """Load an exported folder as its users will, before it is published.

    Every parameter file is loaded, strictly, into the modules that the
    folder's ``hyperparams.yaml`` builds; then SpeechBrain's inference
    class loads the folder, offline, and embeds one second of synthetic
    audio (an emotion model also scores it with its head), which must give
    finite numbers.

    Arguments
    ---------
    folder : pathlib.Path
        The exported folder (under its temporary name).
    task : str
        A key of :data:`TASKS`.
    sources : dict
        Exported file name -> the run's file it was copied from, named in
        errors instead of the temporary copy.

    Returns
    -------
    speechbrain.inference.classifiers.EncoderClassifier
        The loaded model (``SpeakerRecognition`` for a speaker model).

    Raises
    ------
    ExportError
        Naming the run's file that does not load (corrupt, truncated, of
        another shape), or the checkpoint whose model gives NaN or inf.
    """
    from speechbrain.inference.classifiers import EncoderClassifier
    from speechbrain.inference.speaker import SpeakerRecognition

    with open(folder / "hyperparams.yaml", encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    head = hparams["classifier"]
    try:
        load_pretrained_ecapa(
            folder,
            hparams["embedding_model"],
            None if isinstance(head, NoClassifier) else head,
            hparams["mean_var_norm_emb"],
            hparams["label_encoder"],
        )
        if (folder / "mean_var_norm.ckpt").is_file():
            load_pretrained_ecapa(
                folder,
                hparams["embedding_model"],
                mean_var_norm_emb=hparams["mean_var_norm"],
                names={"mean_var_norm_emb": "mean_var_norm.ckpt"},
            )
    except PretrainedError as err:
        raise ExportError(_in_run(str(err), folder, sources)) from None
    interface = SpeakerRecognition if task == "speaker" else EncoderClassifier
    with tempfile.TemporaryDirectory() as savedir:
        model = interface.from_hparams(
            source=str(folder), savedir=savedir, run_opts={"device": "cpu"}
        )
    rate = hparams.get("sample_rate", 16000)
    audio = 0.1 * torch.randn(
        1, rate, generator=torch.Generator().manual_seed(0)
    )
    with torch.no_grad():
        if (
            getattr(model.mods.embedding_model, "speaker_norm", "none")
            != "none"
        ):
            # A model that normalises each speaker needs one enrolled.
            enrol_speaker(model, [audio[0], audio[0].flip(0)])
        outputs = [model.encode_batch(audio, torch.ones(1))]
        if task == "emotion":
            # classify_batch's scores, without its label decoding
            outputs.append(model.mods.classifier(outputs[0]))
    if not all(bool(torch.isfinite(x).all()) for x in outputs):
        checkpoint = sources["embedding_model.ckpt"].parent
        raise ExportError(
            f"{checkpoint}: the model gives NaN or inf values on one second "
            "of synthetic audio (diverged training, or damaged statistics)"
        )
    return model


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
    encoder = _labels(run, cfg, task)
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
        encoder.save(tmp / "label_encoder.txt")
        shutil.copyfile(tmp / "label_encoder.txt", tmp / "label_encoder.ckpt")
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


if __name__ == "__main__":
    sys.exit(main())
