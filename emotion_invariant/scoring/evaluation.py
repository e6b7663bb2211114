"""Evaluate a speaker-verification model on emotional trials.

Embeds the test speakers' utterances with the best checkpoint (lowest dev
EER), optionally removes the training speakers' emotion directions
(``emotion_nap_dims``, ``nap.npz``), scores the emotional trial list, and
writes to ``eval_folder``: ``embeddings.npz`` (as scored), ``scores.txt``,
``report.json`` and ``report.md`` (EER and minDCF overall and per
condition), ``report_det.png`` (DET curves) and ``emotion_eer.png`` (EER per
emotion against neutral enrolment). The speaker recipe's ``train.py`` and
``evaluate.py`` both end here.
"""

import logging
import os
from functools import partial

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emotion_invariant.data.manifest import read_manifest, sample_per_group
from emotion_invariant.models.embedder import embed
from emotion_invariant.runlock import RunFolderLocked, lock_holder
from emotion_invariant.scoring import (
    drop_missing,
    eer,
    extract_embeddings,
    read_trials,
    save_embeddings,
    score_trials,
    verification_report,
    write_scores,
)
from emotion_invariant.scoring.nap import apply_nap, fit_nap, save_nap
from emotion_invariant.scoring.report import markdown_table
from emotion_invariant.utils import atomic_path

logger = logging.getLogger(__name__)


def check_checkpoint(hparams):
    """Refuse to score a save folder outside the run that holds no
    checkpoint.

    A run scores its own save folder, or the published model as it is
    (zero-shot) while that folder holds no checkpoint. A ``save_folder``
    outside the run names another run to score (the suite's +nap systems
    re-score a fine-tuning's): while that run still trains, or when it left
    no checkpoint (it failed), scoring its checkpoints or the published
    model under its name would be a silently wrong result.

    Arguments
    ---------
    hparams : dict
        ``output_folder``, ``save_folder`` and ``checkpointer``.

    Raises
    ------
    RunFolderLocked
        When another process holds the lock of the save folder's run.
    ValueError
        When the save folder holds no checkpoint.

    Example
    -------
    >>> import os, tempfile
    >>> from speechbrain.utils.checkpoints import Checkpointer
    >>> run, other = tempfile.mkdtemp(), tempfile.mkdtemp()
    >>> own = os.path.join(run, "save")
    >>> check_checkpoint({"output_folder": run, "save_folder": own,
    ...                   "checkpointer": Checkpointer(own)})
    >>> check_checkpoint({"output_folder": run, "save_folder": other,
    ...                   "checkpointer": Checkpointer(other)})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: save_folder /...: no checkpoint to evaluate; ...
    """
    run = os.path.realpath(hparams["output_folder"])
    save = os.path.realpath(hparams["save_folder"])
    if os.path.commonpath([run, save]) == run:
        return
    # A run's save folder is <output_folder>/save, locked while it trains.
    holder = lock_holder(os.path.dirname(save))
    if holder is not None and holder["pid"] != os.getpid():
        raise RunFolderLocked(
            f"save_folder {hparams['save_folder']}: its run "
            f"{os.path.dirname(save)} is in use by pid {holder['pid']} "
            f"({holder['command']}) since {holder['since']}, so its "
            "checkpoints are not its result yet; evaluate them once it ends"
        )
    if hparams["checkpointer"].find_checkpoint(min_key="EER") is None:
        raise ValueError(
            f"save_folder {hparams['save_folder']}: no checkpoint to "
            "evaluate; the run that writes it failed or has not saved one "
            "yet"
        )


def evaluate(brain, hparams):
    """Score the test trials with the best checkpoint; returns the report.

    Arguments
    ---------
    brain : speechbrain.core.Brain
        A Brain whose ``modules`` embed (see
        :func:`emotion_invariant.models.embedder.embed`), with its
        checkpointer.
    hparams : dict
        The loaded hyperparameters.

    Returns
    -------
    dict
        The verification report (also written to ``eval_folder``).

    Raises
    ------
    ValueError
        With no checkpoint to score: no ``pretrained_path``, or a
        ``save_folder`` outside the run (:func:`check_checkpoint`).
    """
    if brain.checkpointer.recover_if_possible(min_key="EER") is None:
        check_checkpoint(hparams)
        if not hparams["pretrained_path"]:
            raise ValueError(
                f"{hparams['save_folder']}: no checkpoint and no "
                "pretrained_path: there is no trained model to evaluate"
            )
        logger.info(
            "no checkpoint in %s: evaluating %s as it is (zero-shot)",
            hparams["save_folder"],
            hparams["pretrained_path"],
        )
    brain.modules.eval()
    out = hparams["eval_folder"]
    os.makedirs(out, exist_ok=True)
    data_root = hparams["data_folder"]
    rows = read_manifest(hparams["test_annotation"])
    ids, embeddings = extract_embeddings(
        rows,
        partial(embed, brain.modules),
        batch_size=hparams["eval_batch_size"],
        device=brain.device,
        data_root=data_root,
    )
    if hparams["emotion_nap_dims"] > 0:
        basis = fit_emotion_nap(brain, hparams)
        save_nap(os.path.join(out, "nap.npz"), basis)
        embeddings = apply_nap(embeddings, basis)
    save_embeddings(os.path.join(out, "embeddings.npz"), ids, embeddings)
    cohort = None
    if hparams["score_norm"] != "none":
        train_rows = read_manifest(hparams["train_annotation"])
        cohort = extract_embeddings(
            train_rows,
            partial(embed, brain.modules),
            batch_size=hparams["eval_batch_size"],
            device=brain.device,
            data_root=data_root,
        )
    trials = read_trials(hparams["trials_file"])
    if hparams["skip_bad"]:
        trials, dropped = drop_missing(trials, ids)
        if dropped:
            logger.warning(
                "%s: %d trial(s) name test utterances dropped for their "
                "audio (skip_bad): scored without them",
                hparams["trials_file"],
                dropped,
            )
    scores = score_trials(
        (ids, embeddings),
        trials,
        norm=hparams["score_norm"],
        cohort=cohort,
        topk=hparams["score_topk"],
    )
    write_scores(os.path.join(out, "scores.txt"), trials, scores)
    report = verification_report(
        trials,
        scores,
        os.path.join(out, "report.json"),
        title=hparams["experiment"],
    )
    plot_emotion_eer(report, os.path.join(out, "emotion_eer.png"))
    print(markdown_table(report))
    return report


def fit_emotion_nap(brain, hparams):
    """The emotion nuisance directions of the training speakers.

    Embeds at most ``nap_utterances`` utterances (drawn with the seed) of
    each training speaker and emotion with the evaluated model.
    """
    chosen = sample_per_group(
        read_manifest(hparams["train_annotation"]),
        ("spk_id", "emo"),
        hparams["nap_utterances"],
        hparams["seed"],
    )
    ids, embeddings = extract_embeddings(
        chosen,
        partial(embed, brain.modules),
        batch_size=hparams["eval_batch_size"],
        device=brain.device,
        data_root=hparams["data_folder"],
    )
    by_id = {row["ID"]: row for row in chosen}
    return fit_nap(
        embeddings,
        [by_id[i]["spk_id"] for i in ids],
        [by_id[i]["emo"] for i in ids],
        hparams["emotion_nap_dims"],
    )


def plot_emotion_eer(report, path):
    """Bar chart of EER per condition group, neutral enrolment.

    Arguments
    ---------
    report : dict
        A verification report with ``conditions`` (name -> metrics).
    path : str
        Output PNG.
    """
    names = [n for n in report["conditions"] if n.startswith("neu-")]
    names = ["N-N"] * ("N-N" in report["conditions"]) + names
    values = [100 * report["conditions"][n]["eer"] for n in names]
    fig = Figure(figsize=(1.2 * len(names) + 2, 3.2))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(names, values, color="tab:blue")
    ax.set_ylabel("EER (%)")
    ax.set_title(f"{report.get('title') or ''}: EER by test emotion")
    for x, v in enumerate(values):
        ax.text(x, v, f"{v:.1f}", ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def embedded_eer(embeddings, trials):
    """EER of the trials whose two sides are both embedded.

    Arguments
    ---------
    embeddings : dict
        Utterance ID -> ``[D]`` embedding.
    trials : list of tuple
        ``(label, enrol_id, test_id, ...)``.

    Returns
    -------
    float
        The EER; NaN when no trial has both sides.

    Example
    -------
    >>> emb = {"a": torch.tensor([1.0, 0.0]), "b": torch.tensor([1.0, 0.1]),
    ...        "c": torch.tensor([0.0, 1.0])}
    >>> embedded_eer(emb, [(1, "a", "b"), (0, "a", "c"), (1, "a", "x")])
    0.0
    """
    trials = [t for t in trials if t[1] in embeddings and t[2] in embeddings]
    if not trials:
        return float("nan")
    ids = sorted(embeddings)
    emb = torch.stack([embeddings[i] for i in ids])
    scores = score_trials((ids, emb), trials, device="cpu")
    labels = torch.tensor([t[0] for t in trials])
    return eer(scores, labels)[0]
