"""Speaker-independent emotion recognition: one run's report, a summary.

Scores the test speakers with the best checkpoint (highest dev UA, from
``select_from_epoch`` on: :func:`checkpoint_rank`), probes
the frozen embeddings of the training speakers for speaker identity,
optionally scores a logistic regression on the embeddings as they are and
centred on each speaker's mean (``centred_backend``), and writes per run
``report.json``, ``report.md``, ``predictions.csv`` and a confusion
matrix; :func:`summarize` gives the mean and spread over folds and the
pooled confusion matrix. The emotion recipe's ``train.py`` and
``evaluate.py`` both end here.
"""

import csv
import glob
import json
import logging
import os
from functools import partial

import torch

from emotion_invariant.atomic import atomic_open
from emotion_invariant.data.folds import ROLES
from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.emotion.metrics import (
    classification_report,
    confusion_text,
    mean_spread,
    metrics_from_confusion,
    plot_confusion,
    pool_confusions,
)
from emotion_invariant.emotion.probe import probe_rows, speaker_probe
from emotion_invariant.emotion.speaker_norm import centred_backend
from emotion_invariant.models.embedder import embed
from emotion_invariant.scoring.extract import extract_embeddings

METRICS = (
    ("ua", "UA"),
    ("wa", "WA"),
    ("macro_f1", "macro-F1"),
    ("probe_accuracy", "probe acc."),
    ("probe_chance", "probe chance"),
)
# Shown where a run has them (``centred_backend: true``): the same logistic
# regression on the embeddings as they are, and centred on their speakers.
BACKENDS = (("uncentred_ua", "UA LR"), ("centred_ua", "UA LR centred"))
# The run report's key of each backend column.
_BACKEND_KEYS = {"uncentred_ua": "uncentred", "centred_ua": "centred"}

logger = logging.getLogger(__name__)


def checkpoint_rank(select_from_epoch=1):
    """The order in which an emotion run's checkpoints are selected.

    Highest dev UA among the epochs from ``select_from_epoch`` on; an
    earlier epoch ranks below every later one, so that a method whose
    strength ramps up (the speaker adversary's reversal scale) is judged
    once it acts. A run with no epoch that late (``--debug``) falls back to
    its best dev UA. The recipe keeps the checkpoint this ranks first and
    evaluation recovers it; a checkpoint without a dev UA (saved
    mid-epoch) ranks last.

    Arguments
    ---------
    select_from_epoch : int
        The first epoch that can be selected (1: any).

    Returns
    -------
    callable
        ``Checkpoint -> tuple``, larger is better: an ``importance_key``
        of SpeechBrain's ``Checkpointer``.

    Example
    -------
    >>> from collections import namedtuple
    >>> Ckpt = namedtuple("Ckpt", "meta")
    >>> ckpts = [Ckpt({"UA": 0.7, "epoch": 2}), Ckpt({"UA": 0.6, "epoch": 3}),
    ...          Ckpt({"epoch": 4})]
    >>> max(ckpts, key=checkpoint_rank(1)).meta["epoch"]
    2
    >>> max(ckpts, key=checkpoint_rank(3)).meta["epoch"]
    3
    >>> checkpoint_rank(0)
    Traceback (most recent call last):
    ...
    ValueError: select_from_epoch must be an epoch number (1 or more), got 0
    """
    if (
        isinstance(select_from_epoch, bool)
        or not isinstance(select_from_epoch, int)
        or select_from_epoch < 1
    ):
        raise ValueError(
            "select_from_epoch must be an epoch number (1 or more), got "
            f"{select_from_epoch!r}"
        )

    def rank(ckpt):
        if "UA" not in ckpt.meta:
            return (False, False, 0.0)
        late = ckpt.meta.get("epoch", select_from_epoch) >= select_from_epoch
        return (True, late, ckpt.meta["UA"])

    return rank


def check_selection(hparams):
    """Refuse a ``select_from_epoch`` that is not an epoch of the run.

    Called before anything is written (``start_run``'s ``check``).

    Arguments
    ---------
    hparams : dict
        ``select_from_epoch`` and ``number_of_epochs``.

    Example
    -------
    >>> check_selection({"select_from_epoch": 3, "number_of_epochs": 4})
    >>> check_selection({"select_from_epoch": 5, "number_of_epochs": 4})
    Traceback (most recent call last):
    ...
    ValueError: select_from_epoch: 5 is after the last epoch \
(number_of_epochs: 4), so no checkpoint could be selected
    """
    first, last = hparams["select_from_epoch"], hparams["number_of_epochs"]
    if first > last:  # its type and range: hparams.RULES, at load
        raise ValueError(
            f"select_from_epoch: {first} is after the last epoch "
            f"(number_of_epochs: {last}), so no checkpoint could be selected"
        )


def _embed(brain, rows, hparams):
    return extract_embeddings(
        rows,
        partial(embed, brain.modules),
        batch_size=hparams["eval_batch_size"],
        device=brain.device,
        data_root=hparams["data_folder"],
        sample_rate=hparams["sample_rate"],
        progress=False,
    )


def embed_reusing(rows, known_ids, known, embed_rows):
    """Embeddings of ``rows`` in their order, embedding only the new ones.

    The evaluation embeds the speaker probe's rows first; the backend
    needs every training row, and those already embedded are taken as
    they are rather than computed twice.

    Arguments
    ---------
    rows : list of dict
        Manifest rows with ``ID``.
    known_ids : list of str
        IDs of rows already embedded.
    known : torch.Tensor
        ``[len(known_ids), D]``, their embeddings.
    embed_rows : callable
        ``embed_rows(rows) -> (ids, [N, D])`` for the rest.

    Returns
    -------
    torch.Tensor
        ``[len(rows), D]``.

    Example
    -------
    >>> calls = []
    >>> def embed_rows(rows):
    ...     calls.append([row["ID"] for row in rows])
    ...     return calls[-1], torch.tensor([[float(r["ID"])] for r in rows])
    >>> rows = [{"ID": str(i)} for i in range(4)]
    >>> embed_reusing(rows, ["2", "0"], torch.tensor([[2.0], [0.0]]),
    ...               embed_rows).flatten().tolist(), calls
    ([0.0, 1.0, 2.0, 3.0], [['1', '3']])
    """
    ids, parts = list(known_ids), [known]
    seen = set(ids)
    rest = [row for row in rows if str(row["ID"]) not in seen]
    if rest:
        rest_ids, computed = embed_rows(rest)
        ids += rest_ids
        parts.append(computed)
    position = {uid: i for i, uid in enumerate(ids)}
    return torch.cat(parts)[[position[str(row["ID"])] for row in rows]]


def evaluate(brain, hparams):
    """Score the test speakers and probe for speakers; returns the report.

    Arguments
    ---------
    brain : speechbrain.core.Brain
        A Brain whose ``modules`` embed (see
        :func:`emotion_invariant.models.embedder.embed`) and hold the
        ``emotion_classifier``, with its checkpointer.
    hparams : dict
        The loaded hyperparameters, with ``emotion_labels`` (see
        :func:`emotion_invariant.data.labels.emotion_labels`).

    Returns
    -------
    dict
        :func:`emotion_invariant.emotion.metrics.classification_report` plus
        ``title``, ``fold``, ``speakers`` (per role), ``test_speakers``,
        ``best_dev_ua`` and ``best_epoch`` (the checkpoint's), ``probe``
        and, with ``centred_backend``, ``centred`` and ``uncentred``
        (:func:`centred_backend` with and without centring, less their
        confusion matrices); also written to ``eval_folder``.

    Raises
    ------
    ValueError
        When the run has no end-of-epoch checkpoint (nothing is written).
    """
    best = brain.checkpointer.recover_if_possible(
        importance_key=checkpoint_rank(hparams["select_from_epoch"]),
        ckpt_predicate=lambda ckpt: "UA" in ckpt.meta,
    )
    if best is None:
        raise ValueError(
            f"{hparams['save_folder']}: no end-of-epoch checkpoint, so no "
            "trained emotion head to evaluate (a --debug run keeps its "
            "checkpoints in a temporary folder)"
        )
    if hparams["select_from_epoch"] > 1 and "epoch" not in best.meta:
        logger.warning(
            "%s predates select_from_epoch (no epoch in its meta): chosen "
            "by dev UA alone",
            best.path,
        )
    brain.modules.eval()
    labels = hparams["emotion_labels"]
    out = hparams["eval_folder"]
    parts = {
        name: read_manifest(hparams[f"{key}_annotation"])
        for name, key in ROLES.items()
    }
    test_rows = parts["test"]
    ids, embeddings = _embed(brain, test_rows, hparams)
    with torch.no_grad():
        logits = brain.modules.emotion_classifier(embeddings.to(brain.device))
    predicted = logits.argmax(-1).cpu().numpy()
    truth = [labels.index(row["emo"]) for row in test_rows]
    report = classification_report(truth, predicted, labels)

    chosen = probe_rows(
        parts["train"], hparams["probe_per_speaker"], hparams["seed"]
    )
    chosen_ids, train_embeddings = _embed(brain, chosen, hparams)
    probe = speaker_probe(
        train_embeddings,
        [row["spk_id"] for row in chosen],
        held_out=hparams["probe_held_out"],
        seed=hparams["seed"],
        c=hparams["probe_c"],
    )
    backends = {}
    if hparams.get("centred_backend"):
        train_rows = parts["train"]
        train_all = embed_reusing(
            train_rows,
            chosen_ids,
            train_embeddings,
            partial(_embed, brain, hparams=hparams),
        )
        sides = (
            (
                train_all,
                [row["spk_id"] for row in train_rows],
                [labels.index(row["emo"]) for row in train_rows],
            ),
            (embeddings, [row["spk_id"] for row in test_rows], truth),
        )
        for name, centre in (("uncentred", False), ("centred", True)):
            scores = centred_backend(
                *sides,
                labels,
                c=hparams["probe_c"],
                seed=hparams["seed"],
                centre=centre,
            )
            scores.pop("confusion")
            backends[name] = scores
    fold = hparams["fold"]
    report = {
        "title": hparams["experiment"],
        "fold": "split" if fold is None else str(fold),
        "speakers": {
            name: len({row["spk_id"] for row in rows})
            for name, rows in parts.items()
        },
        "test_speakers": sorted({row["spk_id"] for row in test_rows}),
        "best_dev_ua": best.meta["UA"],
        "best_epoch": best.meta.get("epoch"),
        **report,
        "probe": probe,
    }
    report.update(backends)
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "predictions.csv"), newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "spk_id", "emo", "predicted"])
        for row, uid, pred in zip(test_rows, ids, predicted):
            writer.writerow([uid, row["spk_id"], row["emo"], labels[pred]])
    write_report(report, out, run_markdown(report))
    return report


def write_report(report, folder, markdown):
    """report.json, report.md, confusion.txt and confusion.png."""
    with atomic_open(os.path.join(folder, "report.json")) as f:
        json.dump(report, f, indent=1)
    with atomic_open(os.path.join(folder, "report.md")) as f:
        f.write(markdown)
    with atomic_open(os.path.join(folder, "confusion.txt")) as f:
        f.write(confusion_text(report["confusion"], report["labels"]))
    plot_confusion(
        report["confusion"],
        report["labels"],
        os.path.join(folder, "confusion.png"),
        title=f"{report['title']}: {report['fold']}",
    )


def _pct(value):
    return "-" if value is None else f"{100 * value:.1f}"


def _probe_line(probe):
    return (
        f"Speaker probe (logistic regression on frozen embeddings of "
        f"{probe['n_test']} held-out utterances of the {probe['n_speakers']} "
        f"training speakers): accuracy {_pct(probe['accuracy'])}%, chance "
        f"{_pct(probe['chance_uniform'])}% (1 / speakers), majority class "
        f"{_pct(probe['chance_majority'])}%."
    )


def run_markdown(report):
    """Markdown of one run's report.

    Example
    -------
    >>> from emotion_invariant.emotion.metrics import classification_report
    >>> r = classification_report([0, 1, 1], [0, 1, 0], ["neu", "ang"])
    >>> r.update(title="demo", fold="split", speakers={"test": 2},
    ...          probe={"accuracy": 0.5, "chance_uniform": 0.25,
    ...                 "chance_majority": 0.3, "n_speakers": 4,
    ...                 "n_test": 8})
    >>> print(run_markdown(r).splitlines()[4])
    | split | 2 | 3 | 75.0 | 66.7 | 66.7 | 50.0 | 25.0 |
    """
    lines = [
        f"# {report['title']}: speech emotion recognition, fold "
        f"{report['fold']}",
        "",
        "| fold | test speakers | utterances | UA (%) | WA (%) | macro-F1 (%) "
        "| probe acc. (%) | probe chance (%) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| {report['fold']} | {report['speakers']['test']} | {report['n']} "
        f"| {_pct(report['ua'])} | {_pct(report['wa'])} "
        f"| {_pct(report['macro_f1'])} | {_pct(report['probe']['accuracy'])} "
        f"| {_pct(report['probe']['chance_uniform'])} |",
        "",
        "| emotion | support | recall (%) | precision (%) | F1 (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, scores in report["per_class"].items():
        lines.append(
            f"| {label} | {scores['support']} | {_pct(scores['recall'])} "
            f"| {_pct(scores['precision'])} | {_pct(scores['f1'])} |"
        )
    lines += [
        "",
        _probe_line(report["probe"]),
        "",
    ]
    if "centred" in report:
        lines += [
            "Logistic regression on the embeddings (C = probe_c): UA "
            f"{_pct(report['uncentred']['ua'])}%; centred on each speaker's "
            f"mean: UA {_pct(report['centred']['ua'])}%, WA "
            f"{_pct(report['centred']['wa'])}%, macro-F1 "
            f"{_pct(report['centred']['macro_f1'])}%.",
            "",
        ]
    lines += [
        "Confusion matrix (rows: true emotion, columns: predicted):",
        "",
        "```text",
        confusion_text(report["confusion"], report["labels"]).rstrip(),
        "```",
    ]
    return "\n".join(lines) + "\n"


def _fold_key(path):
    label = os.path.basename(os.path.dirname(os.path.dirname(path)))[5:]
    return (len(label), label)


def summarize(hparams):
    """Mean and spread over folds (or the split's one run), and pooled.

    Reads every run's ``report.json`` under the output folder: ``eval/``
    for the speaker split (``fold: null``), else every ``fold_*/eval/``, so
    folds trained one at a time are summarised together.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters (``output_folder``, ``fold``,
        ``experiment``).

    Returns
    -------
    dict
        ``title``, ``mode``, ``runs`` (fold -> scores), ``summary`` (metric
        -> :func:`emotion_invariant.emotion.metrics.mean_spread`) and ``pooled``
        (metrics of the summed confusion matrices); also written to the
        output folder as ``report.json``, ``report.md``, ``confusion.txt``
        and ``confusion.png``.
    """
    out = hparams["output_folder"]
    if hparams["fold"] is None:
        paths = [os.path.join(out, "eval", "report.json")]
    else:
        paths = sorted(
            glob.glob(os.path.join(out, "fold_*", "eval", "report.json")),
            key=_fold_key,
        )
    missing = [p for p in paths if not os.path.isfile(p)]
    if not paths or missing:
        raise FileNotFoundError(
            f"no evaluation report at {missing[0] if missing else out}"
        )
    reports = []
    for path in paths:
        with open(path) as f:
            reports.append(json.load(f))
    runs = {
        r["fold"]: {
            "test_speakers": r["speakers"]["test"],
            "n": r["n"],
            "ua": r["ua"],
            "wa": r["wa"],
            "macro_f1": r["macro_f1"],
            "probe_accuracy": r["probe"]["accuracy"],
            "probe_chance": r["probe"]["chance_uniform"],
            "probe_majority": r["probe"]["chance_majority"],
            **{
                key: r.get(_BACKEND_KEYS[key], {}).get("ua")
                for key, _ in BACKENDS
            },
        }
        for r in reports
    }
    labels, confusion = pool_confusions(reports)
    pooled = metrics_from_confusion(confusion, labels)
    summary = {
        "title": hparams["experiment"],
        "fold": "pooled",
        "mode": "split" if hparams["fold"] is None else "folds",
        "runs": runs,
        "summary": {
            key: mean_spread([run[key] for run in runs.values()])
            for key, _ in METRICS + BACKENDS
        },
        "pooled": pooled,
        "labels": labels,
        "confusion": confusion.tolist(),
        # Where the test speakers' means came from (enrol_manifest or not).
        "centred_statistics": sorted(
            {r.get("centred", {}).get("statistics", "own") for r in reports}
        ),
    }
    write_report(summary, out, summary_markdown(summary))
    print(summary_markdown(summary))
    return summary


def summary_markdown(summary):
    """Markdown of a summary: a row per fold, mean ± std, pooled.

    Example
    -------
    >>> run = {"test_speakers": 2, "n": 10, "ua": 0.5, "wa": 0.6,
    ...        "macro_f1": 0.4, "probe_accuracy": 0.9, "probe_chance": 0.5}
    >>> s = {"title": "t", "mode": "folds", "runs": {"1": run, "2": run},
    ...      "summary": {k: {"mean": run[k], "std": 0.0} for k in run},
    ...      "pooled": {"ua": 0.5, "wa": 0.6, "macro_f1": 0.4, "n": 20},
    ...      "labels": ["neu"], "confusion": [[20]]}
    >>> print(summary_markdown(s).splitlines()[6])
    | mean ± std | | | 50.0 ± 0.0 | 60.0 ± 0.0 | 40.0 ± 0.0 | 90.0 ± 0.0 \
| 50.0 ± 0.0 |
    """
    metrics = METRICS
    if summary["summary"].get("centred_ua", {}).get("mean") is not None:
        metrics += BACKENDS
    names = [name for _, name in metrics]
    lines = [
        f"# {summary['title']}: speaker-independent speech emotion "
        f"recognition ({len(summary['runs'])} run(s), {summary['mode']})",
        "",
        "| fold | test speakers | utterances | "
        + " | ".join(f"{n} (%)" for n in names)
        + " |",
        "|---|---:|---:|" + "---:|" * len(names),
    ]
    for fold, run in summary["runs"].items():
        cells = " | ".join(_pct(run.get(key)) for key, _ in metrics)
        lines.append(
            f"| {fold} | {run['test_speakers']} | {run['n']} | {cells} |"
        )
    spread = []
    for key, _ in metrics:
        stats = summary["summary"][key]
        spread.append(
            f"{_pct(stats['mean'])} ± {_pct(stats['std'])}"
            if stats["mean"] is not None
            else "-"
        )
    lines.append("| mean ± std | | | " + " | ".join(spread) + " |")
    pooled = summary["pooled"]
    lines += [
        f"| pooled | | {pooled['n']} | {_pct(pooled['ua'])} "
        f"| {_pct(pooled['wa'])} | {_pct(pooled['macro_f1'])} |"
        + " |"
        * (len(metrics) - 3),
        "",
        "UA: mean per-class recall; WA: accuracy; std: over folds. Probe: "
        "held-out speaker accuracy of a logistic regression on frozen "
        "embeddings of the training speakers; chance: 1 / training speakers."
        + (
            " UA LR: a logistic regression on the embeddings; UA LR "
            "centred: the same on the embeddings centred on each speaker's "
            "mean, the test speakers' over their "
            + (
                "enrolment utterances."
                if summary.get("centred_statistics") == ["enrolment"]
                else "own utterances."
            )
            if BACKENDS[0] in metrics
            else ""
        ),
        "",
        "Pooled confusion matrix (rows: true emotion, columns: predicted):",
        "",
        "```text",
        confusion_text(summary["confusion"], summary["labels"]).rstrip(),
        "```",
    ]
    return "\n".join(lines) + "\n"
