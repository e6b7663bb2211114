"""The report of a frozen-layer emotion run, and of its folds.

The chosen grid point (:mod:`~emotion_invariant.emotion.layer_run`) is
recovered at its best dev epoch and scores the test speakers; the report
has the fields and files of every emotion run
(:func:`emotion_invariant.emotion.report.evaluate`), so that fold
summaries and comparisons read it alike, plus what this run chose and how
it normalised. The speaker probe is trained on the weighted features the
emotion head sees; the logistic regression columns (``uncentred``,
``centred``) are on the frozen encoder's own embedding, the reference the
head has to beat, centred with the run's statistics source. With
``layers_lr_c`` set, a logistic regression on the head's own input (the
chosen layers' normalised features, standardised) is scored too
(``layers_lr``): the linear reference of the layers themselves. With
``test_speed_perturb``, each scored utterance's posteriors are averaged
with those of its speed copies (:func:`copy_vote`), and the utterances
alone are scored beside (``originals_only``).

Every title names the speaker normalisation and, for the test speakers,
where its statistics came from: transductive statistics (the test
utterances themselves) are never shown as enrolment ones.
"""

import csv
import glob
import json
import os

import torch

from emotion_invariant.atomic import atomic_open
from emotion_invariant.emotion.layer_run import (
    LayerData,
    point_run,
    read_selection,
)
from emotion_invariant.emotion.metrics import classification_report
from emotion_invariant.emotion.probe import (
    linear_classifier,
    probe_rows,
    speaker_probe,
)
from emotion_invariant.emotion.report import (
    checkpoint_rank,
    run_markdown,
    summarize,
    write_report,
)
from emotion_invariant.emotion.speaker_norm import (
    SpeakerStatistics,
    centred_backend,
)


def norm_label(mode, stats):
    """How a run normalised its speakers, for titles and tables.

    Example
    -------
    >>> norm_label("centre", "transductive")
    'speaker_norm centre, test statistics transductive (own test utterances)'
    >>> norm_label("none", "enrolment")
    'speaker_norm none'
    """
    if mode == "none":
        return "speaker_norm none"
    where = {
        "transductive": "transductive (own test utterances)",
        "enrolment": "from enrolment utterances",
    }[stats]
    return f"speaker_norm {mode}, test statistics {where}"


def _speeds(values):
    return ", ".join(f"{v:g}" for v in values)


def run_title(hparams):
    """The experiment's name with its :func:`norm_label`."""
    label = norm_label(hparams["speaker_norm"], hparams["speaker_stats"])
    speeds = hparams.get("test_speed_perturb")
    if speeds:
        label += f"; test-time speed copies {_speeds(speeds)}"
    return f"{hparams['experiment']} [frozen layers; {label}]"


def _embedding_columns(data):
    start = sum(
        width for name, width in data.dims.items() if name != "embedding"
    )
    return slice(start, start + data.dims["embedding"])


def embedding_backends(data, test, hparams):
    """Logistic regression on the frozen encoder's embedding: as it is and
    centred on each speaker's mean, the test speakers' from the run's
    statistics source (transductive unless enrolment)."""
    cols = _embedding_columns(data)
    train_x = data.features["train"][:, cols]
    test_x = test["features"][:, cols]
    train_spk = data.spk("train")
    test_spk = [row["spk_id"] for row in test["rows"]]
    truth = [data.labels.index(row["emo"]) for row in test["rows"]]
    centre = SpeakerStatistics("centre").fit(train_x, train_spk, "training")
    test_centre = SpeakerStatistics("centre", centre.population)
    if test["stats"] == "enrolment":
        enrol = test["enrol_features"][:, cols]
        test_centre.fit(enrol, [r["spk_id"] for r in test["enrol_rows"]])
    else:
        test_centre.fit(test_x, test_spk, "test utterances (transductive)")
    sides = {
        "uncentred": (train_x, test_x),
        "centred": (
            centre.apply(train_x, train_spk),
            test_centre.apply(test_x, test_spk),
        ),
    }
    out = {}
    for name, (x_train, x_test) in sides.items():
        scores = centred_backend(
            (x_train.double().numpy(), train_spk, data.emo("train")),
            (x_test.double().numpy(), test_spk, truth),
            data.labels,
            c=hparams["probe_c"],
            seed=hparams["seed"],
            centre=False,
        )
        scores.pop("confusion")
        out[name] = scores
    out["centred"]["statistics"] = (
        "enrolment" if test["stats"] == "enrolment" else "transductive"
    )
    return out


def _headline(scores):
    return {k: scores[k] for k in ("ua", "wa", "macro_f1")}


def copy_vote(head, features, copies, key):
    """Each test row's emotion: the argmax of its posteriors averaged over
    the row and its speed copies (test-time augmentation; none: the row's
    own argmax).

    Arguments
    ---------
    head : torch.nn.Module
        Maps normalised features ``[N, F]`` to logits ``[N, classes]``.
    features : torch.Tensor
        The rows' normalised features.
    copies : list of dict
        Per speed factor, the copies' features under ``key``, aligned with
        the rows (``LayerData.test()['copies']``).
    key : str
        ``normalised`` or ``transductive``.

    Returns
    -------
    numpy.ndarray
        The predicted emotion index of each row.

    Example
    -------
    >>> head = torch.nn.Identity()
    >>> rows = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> copy_vote(head, rows, [], "normalised")
    array([0, 1])
    >>> copies = [{"normalised": torch.tensor([[0.0, 9.0], [0.0, 1.0]])}]
    >>> copy_vote(head, rows, copies, "normalised")
    array([1, 1])
    """
    with torch.no_grad():
        posteriors = head(features).softmax(-1)
        for copy in copies:
            posteriors = posteriors + head(copy[key]).softmax(-1)
    return posteriors.argmax(-1).numpy()


def layers_logistic(train, test, layers, c, seed=0):
    """A logistic regression on normalised layer features.

    The columns of ``layers`` (the head's ``(start, stop)`` spans) are
    standardised on the training side and a multinomial logistic
    regression of inverse L2 strength ``c`` learns the training emotions.

    Arguments
    ---------
    train, test : tuple
        ``(features [N, F], emotion indices)`` each, as the head sees the
        features (after the run's speaker normalisation).
    layers : list of tuple
        ``(start, stop)`` column spans.
    c : float
        Inverse L2 strength.
    seed : int
        Seed of the solver.

    Returns
    -------
    numpy.ndarray
        The predicted emotion index of each test row.

    Example
    -------
    >>> x = torch.tensor([[0.0, 5.0], [1.0, -3.0], [0.1, 2.0], [0.9, 7.0]])
    >>> layers_logistic((x, [0, 1, 0, 1]), (x, None), [(0, 1)], c=10.0)
    array([0, 1, 0, 1])
    """
    cols = torch.cat([torch.arange(a, b) for a, b in layers])
    model = linear_classifier(c, seed, max_iter=1000)
    model.fit(train[0][:, cols].double().numpy(), list(train[1]))
    return model.predict(test[0][:, cols].double().numpy())


def evaluate_layers(hparams, data, run, table):
    """Score the test speakers with the chosen point; write the report.

    Arguments
    ---------
    hparams : dict
        The run's hyperparameters.
    data : emotion_invariant.emotion.layer_run.LayerData
        Its features.
    run : dict
        The chosen point's :func:`~emotion_invariant.emotion.layer_run.
        point_run`.
    table : list of dict
        The grid's rows (:func:`~emotion_invariant.emotion.layer_run.
        select_on_dev`).

    Returns
    -------
    dict
        The report, as :func:`emotion_invariant.emotion.report.evaluate`
        gives it, plus ``frozen_layers`` (the chosen point, its layer
        weights, the grid, the normalisation and its statistics source,
        the enrolment utterances left out of the test).
    """
    best = run["checkpointer"].recover_if_possible(
        importance_key=checkpoint_rank(hparams["select_from_epoch"]),
        ckpt_predicate=lambda ckpt: "UA" in ckpt.meta,
    )
    if best is None:
        raise ValueError(
            f"{run['checkpointer'].checkpoints_dir}: no end-of-epoch "
            "checkpoint to evaluate"
        )
    head = run["modules"]["layer_head"].eval()
    labels = data.labels
    test = data.test()
    truth = [labels.index(row["emo"]) for row in test["rows"]]
    copies = test["copies"]
    predicted = copy_vote(head, test["normalised"], copies, "normalised")
    scores = classification_report(truth, predicted, labels)
    # Without the speed copies: what test-time augmentation adds.
    originals = None
    if copies:
        alone = copy_vote(head, test["normalised"], [], "normalised")
        originals = _headline(classification_report(truth, alone, labels))
    # The same model and rows with transductive statistics: what the
    # enrolment costs (the training does not depend on the test source).
    transductive = None
    if test["stats"] == "enrolment":
        own = copy_vote(head, test["transductive"], copies, "transductive")
        transductive = _headline(classification_report(truth, own, labels))

    chosen = probe_rows(
        data.parts["train"], hparams["probe_per_speaker"], hparams["seed"]
    )
    position = {row["ID"]: i for i, row in enumerate(data.parts["train"])}
    with torch.no_grad():
        pooled = head.pool(
            data.normalised["train"][[position[row["ID"]] for row in chosen]]
        )
    probe = speaker_probe(
        pooled,
        [row["spk_id"] for row in chosen],
        held_out=hparams["probe_held_out"],
        seed=hparams["seed"],
        c=hparams["probe_c"],
    )
    fold = hparams["fold"]
    report = {
        "title": run_title(hparams),
        "fold": "split" if fold is None else str(fold),
        "speakers": {
            "train": len(data.speakers),
            "dev": len(set(data.spk("dev"))),
            "test": len({row["spk_id"] for row in test["rows"]}),
        },
        "test_speakers": sorted({row["spk_id"] for row in test["rows"]}),
        "best_dev_ua": best.meta["UA"],
        "best_epoch": best.meta.get("epoch"),
        **scores,
        "probe": probe,
        "frozen_layers": {
            "point": run["point"],
            "layers": list(head.layers),
            "layer_weights": head.layer_weights(),
            "grid": table,
            "speaker_norm": hparams["speaker_norm"],
            "test_statistics": test["stats"],
            "enrolment_excluded": test["excluded"],
            "transductive": transductive,
            "test_speed_perturb": [c["speed"] for c in copies],
            "originals_only": originals,
        },
    }
    if hparams.get("centred_backend"):
        report.update(embedding_backends(data, test, hparams))
    if hparams.get("layers_lr_c"):
        lr_predicted = layers_logistic(
            (data.normalised["train"], data.emo("train")),
            (test["normalised"], truth),
            head.pooling.spans,
            hparams["layers_lr_c"],
            hparams["seed"],
        )
        layers_lr = classification_report(truth, lr_predicted, labels)
        report["layers_lr"] = {
            "c": hparams["layers_lr_c"],
            **{k: layers_lr[k] for k in ("ua", "wa", "macro_f1")},
        }
    out = hparams["eval_folder"]
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "predictions.csv"), newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "spk_id", "emo", "predicted"])
        for row, pred in zip(test["rows"], predicted):
            writer.writerow(
                [row["ID"], row["spk_id"], row["emo"], labels[pred]]
            )
    write_report(report, out, run_markdown(report) + layers_markdown(report))
    return report


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}"


def layers_markdown(report):
    """The frozen-layer part of a run's ``report.md``.

    Example
    -------
    >>> point = {"head_type": "mlp", "layer_set": "all", "lr": 0.001}
    >>> report = {"frozen_layers": {
    ...     "point": point, "layer_weights": {"mfa": 1.0},
    ...     "grid": [{"name": "mlp-all-lr0.001", "dev_ua": 0.5, "epoch": 3,
    ...               "chosen": True}],
    ...     "speaker_norm": "centre", "test_statistics": "transductive",
    ...     "enrolment_excluded": 0}}
    >>> print(layers_markdown(report).splitlines()[3])
    Frozen encoder, layer features; speaker_norm centre, test statistics \
transductive (own test utterances).
    """
    info = report["frozen_layers"]
    lines = [
        "",
        "## Frozen layers",
        "",
        "Frozen encoder, layer features; "
        + norm_label(info["speaker_norm"], info["test_statistics"])
        + ".",
    ]
    if info["enrolment_excluded"]:
        lines.append(
            f"{info['enrolment_excluded']} test utterances are enrolment "
            "utterances (enrol_manifest): not scored."
        )
    if info.get("test_speed_perturb"):
        lines.append(
            "Test-time augmentation: each scored utterance's posteriors are "
            f"averaged with those of its copies at speed "
            f"{_speeds(info['test_speed_perturb'])}, each "
            "copy normalised on the same copies of its speaker's "
            "statistics utterances; the utterances alone: UA "
            f"{_pct(info['originals_only']['ua'])}%."
        )
    if info.get("transductive"):
        lines.append(
            "The same model and utterances with transductive statistics "
            f"(own test utterances): UA {_pct(info['transductive']['ua'])}%."
        )
    weights = ", ".join(
        f"{k} {v:.2f}" for k, v in info["layer_weights"].items()
    )
    lines += [
        "",
        "Grid points, chosen by the dev speakers' UA alone (the test "
        "speakers' features are computed after the choice):",
        "",
        "| grid point | best dev UA (%) | at epoch | chosen |",
        "|---|---:|---:|---|",
    ]
    for row in info["grid"]:
        lines.append(
            f"| {row['name']} | {_pct(row['dev_ua'])} | {row['epoch']} "
            f"| {'yes' if row['chosen'] else ''} |"
        )
    lines += ["", f"Layer weights of the chosen point: {weights}.", ""]
    if "layers_lr" in report:
        lines += [
            "Logistic regression on the head's input (the chosen layers, "
            f"normalised as the head sees them; C {report['layers_lr']['c']}"
            f"): UA {_pct(report['layers_lr']['ua'])}%.",
            "",
        ]
    if "centred" in report:
        lines += [
            "Logistic regression on the frozen encoder's embedding: UA "
            f"{_pct(report['uncentred']['ua'])}%; centred on each speaker's "
            f"mean ({report['centred']['statistics']} statistics for the "
            f"test speakers): UA {_pct(report['centred']['ua'])}%.",
            "",
        ]
    return "\n".join(lines)


def write_layer_summary(hparams):
    """``selection.md`` in the output folder: each fold's choice.

    Returns
    -------
    str
        The markdown written.
    """
    out = hparams["output_folder"]
    if hparams["fold"] is None:
        paths = [os.path.join(out, "eval", "report.json")]
    else:
        paths = sorted(
            glob.glob(os.path.join(out, "fold_*", "eval", "report.json"))
        )
    lines = [
        f"# {run_title(hparams)}: the grid points chosen on dev speakers",
        "",
        "| fold | chosen | dev UA (%) | epoch | test UA (%) "
        "| test UA, transductive statistics (%) | layer weights |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for path in paths:
        with open(path, encoding="utf-8") as f:
            report = json.load(f)
        info = report.get("frozen_layers")
        if info is None:
            continue
        chosen = next(r for r in info["grid"] if r["chosen"])
        weights = ", ".join(
            f"{k} {v:.2f}" for k, v in info["layer_weights"].items()
        )
        own = (info.get("transductive") or {}).get("ua")
        lines.append(
            f"| {report['fold']} | {chosen['name']} | {_pct(chosen['dev_ua'])} "
            f"| {chosen['epoch']} | {_pct(report['ua'])} | {_pct(own)} "
            f"| {weights} |"
        )
    text = "\n".join(lines) + "\n"
    with atomic_open(os.path.join(out, "selection.md")) as f:
        f.write(text)
    return text


def evaluate_saved(hparams, device="cpu"):
    """Evaluate a trained frozen-layer run again: the point its
    ``selection.json`` chose, recovered from its checkpoints."""
    data = LayerData(hparams, device)
    point, table = read_selection(hparams)
    return evaluate_layers(
        hparams, data, point_run(hparams, data, point), table
    )


def summarize_runs(hparams):
    """:func:`~emotion_invariant.emotion.report.summarize` the runs; for
    frozen-layer runs, titled with the normalisation and its statistics
    source, and with ``selection.md`` (:func:`write_layer_summary`)."""
    if hparams.get("frozen_layers"):
        write_layer_summary(hparams)
        hparams = {**hparams, "experiment": run_title(hparams)}
    return summarize(hparams)
