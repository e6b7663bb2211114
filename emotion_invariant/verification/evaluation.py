"""Evaluate a speaker-verification model on emotional trials.

Embeds the test speakers' utterances with the best checkpoint (lowest dev
EER), optionally maps them with a scoring back-end fitted on the training
speakers (``scoring_backend``, ``backend.npz``; ``emotion_nap_dims`` is
emotion NAP, also written as ``nap.npz``), scores the emotional trial list,
and
writes to ``eval_folder``: ``embeddings.npz`` (as scored), ``scores.txt``,
``report.json`` and ``report.md`` (EER and minDCF overall and per
condition), ``report_det.png`` (DET curves) and ``emotion_eer.png`` (EER per
emotion against neutral enrolment); with a back-end, the same embeddings
scored without it go to ``without_backend/`` (``scores.txt`` and the
report), so one evaluation gives both rows. The speaker recipe's
``train.py`` and ``evaluate.py`` both end here.
"""

import logging
import os
import shutil
from collections import Counter
from functools import partial

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emotion_invariant.atomic import atomic_path
from emotion_invariant.backend import fit
from emotion_invariant.backend.pseudo import EmotionLabeller
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
from emotion_invariant.scoring.nap import save_nap
from emotion_invariant.scoring.report import markdown_table

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
    backend_request(hparams)  # a contradictory request fails before work
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
    backend = fit_scoring_backend(brain, hparams)
    # An earlier evaluation's back-end files would read as this one's.
    stale = ["without_backend", "backend.npz", "nap.npz"]
    if backend is not None:
        stale = [] if backend.kind == "emotion_nap" else ["nap.npz"]
    for name in stale:
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
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
    if backend is not None:
        # The same embeddings without the back-end, beside: the gain of the
        # back-end on the same model and trials, at the cost of a scoring.
        score_and_report(
            os.path.join(out, "without_backend"),
            (ids, embeddings),
            trials,
            hparams,
            cohort,
            f"{hparams['experiment']} (without back-end)",
        )
        backend.save(os.path.join(out, "backend.npz"))
        if backend.kind == "emotion_nap":
            save_nap(os.path.join(out, "nap.npz"), backend.arrays["basis"])
        embeddings = backend.transform(embeddings)
        if cohort is not None:
            # The cohort is scored against mapped embeddings: map it too.
            cohort = (cohort[0], backend.transform(cohort[1]))
    save_embeddings(os.path.join(out, "embeddings.npz"), ids, embeddings)
    report = score_and_report(
        out, (ids, embeddings), trials, hparams, cohort, hparams["experiment"]
    )
    plot_emotion_eer(report, os.path.join(out, "emotion_eer.png"))
    print(markdown_table(report))
    return report


def score_and_report(out, embeddings, trials, hparams, cohort, title):
    """Score ``trials`` and write ``scores.txt`` and the report to ``out``.

    Arguments
    ---------
    out : str
        The folder to write (made if missing).
    embeddings : tuple
        ``(ids, [N, D] tensor)`` of the test utterances.
    trials : list
        The trial list.
    hparams : dict
        ``score_norm`` and ``score_topk``.
    cohort : tuple or None
        ``(ids, embeddings)`` of the normalisation cohort.
    title : str
        The report's title.

    Returns
    -------
    dict
        The verification report.
    """
    os.makedirs(out, exist_ok=True)
    scores = score_trials(
        embeddings,
        trials,
        norm=hparams["score_norm"],
        cohort=cohort,
        topk=hparams["score_topk"],
    )
    write_scores(os.path.join(out, "scores.txt"), trials, scores)
    return verification_report(
        trials, scores, os.path.join(out, "report.json"), title=title
    )


def backend_request(hparams):
    """``(kind, settings)`` of the scoring back-end asked for, or None.

    ``emotion_nap_dims: K`` is ``scoring_backend: emotion_nap`` with ``K``
    dims; asking for both is an error.

    Example
    -------
    >>> backend_request({"scoring_backend": "wccn", "emotion_nap_dims": 0,
    ...                  "backend_dims": 5, "backend_shrinkage": 0.1})
    ('wccn', {'shrinkage': 0.1})
    >>> backend_request({"scoring_backend": "none", "emotion_nap_dims": 3})
    ('emotion_nap', {'dims': 3})
    >>> backend_request({"scoring_backend": "within_speaker_nap+wccn",
    ...                  "backend_dims": 5, "backend_shrinkage": 0.8})
    ... # doctest: +NORMALIZE_WHITESPACE
    ('chain', {'members': [['within_speaker_nap', {'dims': 5}],
                           ['wccn', {'shrinkage': 0.8}]]})
    """
    kind = hparams.get("scoring_backend", "none")
    nap_dims = hparams.get("emotion_nap_dims", 0)
    if nap_dims and kind != "none":
        raise ValueError(
            f"emotion_nap_dims: {nap_dims} and scoring_backend: {kind}: "
            "choose one (emotion_nap_dims is scoring_backend: emotion_nap)"
        )
    if nap_dims:
        return "emotion_nap", {"dims": nap_dims}
    if kind == "none":
        return None
    if "+" in kind:  # a projection, then WCCN
        first, _, second = kind.partition("+")
        members = [
            [first, {"dims": hparams["backend_dims"]}],
            [second, {"shrinkage": hparams["backend_shrinkage"]}],
        ]
        return "chain", {"members": members}
    settings = {}
    if kind in ("emotion_nap", "within_speaker_nap", "lda", "consistency"):
        settings["dims"] = hparams["backend_dims"]
    if kind in ("wccn", "lda"):
        settings["shrinkage"] = hparams["backend_shrinkage"]
    return kind, settings


def fit_scoring_backend(brain, hparams):
    """The scoring back-end fitted on the training (or dev) speakers, or
    None.

    Embeds at most ``nap_utterances`` utterances (drawn with the seed) of
    each speaker and emotion of ``backend_fit_split`` (``train``: the
    training manifest; ``dev``: the dev manifest, speakers the training
    did not see) with the evaluated model, and fits
    :func:`emotion_invariant.backend.fit` on their speaker labels (and
    emotion labels, for the members that read them: the manifest's, or
    those ``backend_emotion_model`` predicts; the draw is by the manifest's
    ``emo`` column either way).
    """
    request = backend_request(hparams)
    if request is None:
        return None
    kind, settings = request
    split = hparams.get("backend_fit_split", "train")
    annotation = hparams[
        "valid_annotation" if split == "dev" else "train_annotation"
    ]
    chosen = sample_per_group(
        read_manifest(annotation),
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
    if hparams.get("backend_emotion_model"):
        # Emotion labels as an emotion model trained elsewhere predicts
        # them, for a corpus whose own are missing or not to be used.
        labeller = EmotionLabeller(
            hparams["backend_emotion_model"], str(brain.device)
        )
        predicted = labeller.predict(
            [by_id[i] for i in ids], hparams["data_folder"]
        )
        by_id = {i: {**by_id[i], "emo": e} for i, e in zip(ids, predicted)}
        logger.info(
            "scoring back-end: emotion labels predicted by %s: %s",
            hparams["backend_emotion_model"],
            dict(Counter(predicted)),
        )
    backend = fit(
        kind,
        embeddings,
        [by_id[i]["spk_id"] for i in ids],
        [by_id[i]["emo"] for i in ids],
        **settings,
    )
    logger.info(
        "scoring back-end fitted on %d utterances of %s: %s",
        len(ids),
        annotation,
        backend,
    )
    return backend


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
