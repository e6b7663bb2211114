"""A model folder in SpeechBrain's published layout, and the run folder it
is exported from: what each task's folder holds, the run's
``hyperparams.yaml`` and checkpoints, the label encoder, and the pieces of
an exported ``hyperparams.yaml``.

Nothing here builds a model: a folder's ``hyperparams.yaml`` is read with
its references resolved and its modules left as ``!new:`` entries
(:func:`read_config`), which the scoring and back-end commands read a
folder's ``task`` and settings with. Writing a whole folder is
:mod:`emotion_invariant.models.export`'s.
"""

import io
import json
import pathlib
import shutil

import ruamel.yaml
import torch
from hyperpyyaml import resolve_references
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.tag import Tag
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.checkpoints import Checkpointer

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
    emotion_invariant.models.folder.ExportError: ...: no hyperparams.yaml \
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
    emotion_invariant.models.folder.ExportError: .../save: no checkpoint...
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


def yaml_text(data):
    """``data`` as a block of an exported ``hyperparams.yaml``: four-space
    indents, no comments of the run's (see :func:`_plain_style`).

    Example
    -------
    >>> data = ruamel.yaml.YAML().load("channels:\\n- 8  # wide\\n- 8\\n")
    >>> print(yaml_text(data), end="")
    channels: [8, 8]
    """
    stream = io.StringIO()
    yaml = ruamel.yaml.YAML()
    yaml.indent(mapping=4, sequence=6, offset=4)
    yaml.dump(_plain_style(data), stream)
    return stream.getvalue()


def run_labels(run_folder, cfg, task):
    """The run's label encoder: its training speakers (``save/``), or the
    emotions its evaluation report lists.

    Raises
    ------
    ExportError
        Naming the file that is missing, or the report without labels.
    """
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


def write_label_encoder(folder, encoder):
    """Save ``encoder`` in ``folder`` as ``label_encoder.txt``, and as
    ``label_encoder.ckpt``, the name SpeechBrain's pretrainer fetches by
    default."""
    folder = pathlib.Path(folder)
    encoder.save(folder / "label_encoder.txt")
    shutil.copyfile(folder / "label_encoder.txt", folder / "label_encoder.ckpt")


def new_entry(cls, **arguments):
    """A yaml entry that builds ``cls`` with ``arguments`` (``!new:``)."""
    entry = CommentedMap(arguments.items())
    entry.yaml_set_ctag(Tag(suffix=f"!new:{cls.__module__}.{cls.__name__}"))
    return entry


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
