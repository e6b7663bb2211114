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

A speaker model also stores, in ``hyperparams.yaml``, the cosine threshold
at the dev speakers' EER (``threshold``), which
``python -m emotion_invariant.scoring.verify`` decides with. The folder is
written next to ``OUT`` under a temporary name, then renamed.

Usage::

    python -m emotion_invariant.models.export RUN_FOLDER OUT_FOLDER \\
        [--checkpoint best|last|CKPT_FOLDER]
"""

import argparse
import io
import json
import os
import pathlib
import shutil
import sys
import tempfile

import ruamel.yaml
import torch
from hyperpyyaml import resolve_references
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.utils.checkpoints import Checkpointer

from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.data.trials import make_trials
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


def read_run_config(run_folder):
    """The run's ``hyperparams.yaml`` with every reference resolved.

    Looked up in ``run_folder`` then its parent (a fold's run folder sits
    in the output folder that holds the file). Nothing is instantiated.

    Returns
    -------
    dict
        A ruamel mapping; module entries keep their ``!new:`` tags.
    """
    run = pathlib.Path(run_folder)
    for folder in (run, run.parent):
        path = folder / "hyperparams.yaml"
        if path.is_file():
            break
    else:
        raise ExportError(
            f"{run}: no hyperparams.yaml here or in its parent: not the "
            "output folder of a recipe run"
        )
    with open(path, encoding="utf-8") as f:
        text = resolve_references(f).getvalue()
    return ruamel.yaml.YAML().load(text)


def choose_checkpoint(run_folder, checkpoint, task):
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
        if not (path / "embedding_model.ckpt").is_file():
            raise ExportError(f"{path}: not a checkpoint folder")
        return path
    save = pathlib.Path(run_folder) / "save"
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


def hyperparams_text(cfg, task, n_classes, global_norm, threshold=None):
    """The exported ``hyperparams.yaml``.

    The modules are the run's own (their resolved settings), the head sized
    for ``n_classes``; the pretrainer names no paths, so SpeechBrain fetches
    ``<loadable>.ckpt`` from the ``source`` folder itself.
    """
    head = cfg[TASKS[task]["head"]]
    if task == "speaker":
        head["out_neurons"] = n_classes
    else:
        head[-1]["out_features"] = n_classes
    parts = [
        "# Exported by python -m emotion_invariant.models.export:\n"
        "# SpeechBrain's published layout. Every file is fetched from the\n"
        "# folder passed as `source` to from_hparams (no pretrained_path,\n"
        "# no hub).\n",
        _yaml_text({"sample_rate": cfg.get("sample_rate", 16000)}),
    ]
    if threshold is not None:
        parts.append(
            "# Cosine threshold at the dev speakers' EER (used by\n"
            "# python -m emotion_invariant.scoring.verify).\n"
            + _yaml_text({"threshold": round(float(threshold), 6)})
        )
    for name in ("compute_features", "mean_var_norm", "embedding_model"):
        parts.append(_yaml_text({name: cfg[name]}))
    parts.append(_yaml_text({"classifier": head}))
    loadables = list(LOADABLES) + ["mean_var_norm"] * global_norm
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


def dev_threshold(folder, cfg):
    """Cosine threshold at the EER of the run's dev trials, embedded with
    the exported model as SpeechBrain loads it; None without the dev data.

    The trials are those the recipe selected its checkpoint with.
    """
    from speechbrain.inference.speaker import SpeakerRecognition

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
    with tempfile.TemporaryDirectory() as savedir:
        model = SpeakerRecognition.from_hparams(
            source=str(folder), savedir=savedir, run_opts={"device": "cpu"}
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


def model_card(run_folder, cfg, task, ckpt, threshold):
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
            "embeddings before scoring; this model does not"
        )
    report = run / "eval" / "report.md"
    lines += ["", "## Results (the run's evaluation report)", ""]
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


def export(run_folder, out_folder, checkpoint="best"):
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

    Returns
    -------
    dict
        ``task``, ``checkpoint`` and ``threshold`` (None where not stored).
    """
    out = pathlib.Path(out_folder)
    if out.exists():
        raise ExportError(f"{out}: already exists; choose a new folder")
    cfg = read_run_config(run_folder)
    task = "emotion" if "emotion_classifier" in cfg else "speaker"
    ckpt = choose_checkpoint(run_folder, checkpoint, task)
    head_file = ckpt / f"{TASKS[task]['head']}.ckpt"
    for path in (ckpt / "embedding_model.ckpt", head_file):
        if not path.is_file():
            raise ExportError(f"{path}: missing from the checkpoint")
    encoder = _labels(run_folder, cfg, task)
    head = torch.load(head_file, map_location="cpu", weights_only=True)
    n_classes = list(head.values())[-1].shape[0]
    if n_classes != len(encoder):
        raise ExportError(
            f"{head_file}: {n_classes} outputs but {len(encoder)} labels"
        )
    global_norm = cfg["mean_var_norm"].get("norm_type") == "global"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        shutil.copyfile(
            ckpt / "embedding_model.ckpt", tmp / "embedding_model.ckpt"
        )
        shutil.copyfile(head_file, tmp / "classifier.ckpt")
        if global_norm:
            shutil.copyfile(
                ckpt / "normalizer.ckpt", tmp / "mean_var_norm.ckpt"
            )
        dim = int(cfg["embedding_model"]["lin_neurons"])
        torch.save(
            {
                "count": 0,
                "glob_mean": torch.zeros(dim),
                "glob_std": torch.ones(dim),
            },
            tmp / "mean_var_norm_emb.ckpt",
        )
        encoder.save(tmp / "label_encoder.txt")
        shutil.copyfile(tmp / "label_encoder.txt", tmp / "label_encoder.ckpt")
        text = hyperparams_text(cfg, task, n_classes, global_norm)
        (tmp / "hyperparams.yaml").write_text(text, encoding="utf-8")
        threshold = None
        if task == "speaker":
            threshold = dev_threshold(tmp, cfg)
            if threshold is not None:
                text = hyperparams_text(
                    cfg, task, n_classes, global_norm, threshold
                )
                (tmp / "hyperparams.yaml").write_text(text, encoding="utf-8")
        card = model_card(run_folder, cfg, task, ckpt, threshold)
        (tmp / "README.md").write_text(card, encoding="utf-8")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o777 & ~mask)
        os.replace(tmp, out)
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
    args = parser.parse_args(argv)
    try:
        result = export(args.run_folder, args.out_folder, args.checkpoint)
    except (ValueError, OSError) as err:
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
