"""Score a trial list through a saved back-end: the scoring command's
counterpart for embeddings mapped by (or scored with) a back-end.

``python -m emotion_invariant.backend score --backend B.npz --embeddings E
--trials T --out SCORES [--cohort C --norm as] [--report R.json]`` maps the
embeddings (and the cohort, so that normalisation compares scores of one
space) and scores the trials as ``python -m emotion_invariant.scoring``
does; a PLDA back-end scores each needed pair with SpeechBrain's PLDA.
"""

import torch

from emotion_invariant.backend import load_backend
from emotion_invariant.backend.base import BackendError
from emotion_invariant.scoring import (
    read_trials,
    score_trials,
    verification_report,
    write_scores,
)
from emotion_invariant.scoring.embeddings import load_embeddings


def backend_scores(backend, ids, embeddings, trials, cohort=None, **options):
    """Scores of ``trials`` (a :class:`Trials`) through ``backend``.

    Arguments
    ---------
    backend : Backend
    ids : list of str
    embeddings : torch.Tensor
        ``[N, D]`` embeddings of ``ids``, as the model gives them.
    trials : Trials
    cohort : tuple, optional
        ``(ids, embeddings)`` of a score-normalisation cohort.
    **options
        ``norm``, ``topk``, ``device`` of
        :func:`emotion_invariant.scoring.score_trials`.

    Returns
    -------
    torch.Tensor
        float32 ``[T]`` scores, in trial order.

    Example
    -------
    >>> from emotion_invariant.backend import fit
    >>> from emotion_invariant.scoring import Trials
    >>> emb = torch.eye(4).repeat(3, 1) + 0.1 * torch.randn(12, 4)
    >>> wccn = fit("wccn", emb, [0, 1, 2, 3] * 3, shrinkage=0.5)
    >>> ids = [f"u{i}" for i in range(12)]
    >>> trials = Trials.from_records([(1, "u0", "u4"), (0, "u0", "u1")])
    >>> scores = backend_scores(wccn, ids, emb, trials)
    >>> expected = wccn.score_pairs(emb[[0, 0]], emb[[4, 1]])
    >>> bool(torch.allclose(scores, expected, atol=1e-6))
    True
    """
    index = {uid: i for i, uid in enumerate(ids)}
    missing = [n for n in trials.names if n not in index]
    if missing:
        raise BackendError(
            f"{trials.source}: {len(missing)} id(s) not in the embeddings, "
            f"e.g. {missing[0]!r}"
        )
    if backend.kind == "plda":
        if options.get("norm", "none") != "none" or cohort is not None:
            raise BackendError(
                "plda: its scores are log-likelihood ratios, not cosines; "
                "score normalisation is not applied to them (--norm none)"
            )
        rows = torch.tensor([index[n] for n in trials.names])
        needed = embeddings[rows]
        enrol = needed[torch.as_tensor(trials.enrol)]
        test = needed[torch.as_tensor(trials.test)]
        return backend.score_pairs(enrol, test)
    mapped = backend.transform(embeddings)
    if cohort is not None:
        cohort = (list(cohort[0]), backend.transform(cohort[1]))
    return score_trials((list(ids), mapped), trials, cohort=cohort, **options)


def score_with_backend(
    backend_path,
    embeddings,
    trials,
    out,
    cohort=None,
    norm="none",
    topk=300,
    report=None,
    device=None,
):
    """The command's work: read, score, write ``out`` (and ``report``)."""
    backend = load_backend(backend_path)
    ids, matrix = load_embeddings(embeddings)
    matrix = torch.as_tensor(matrix)
    cohort_data = None
    if cohort is not None:
        cohort_ids, cohort_matrix = load_embeddings(cohort)
        cohort_data = (cohort_ids, torch.as_tensor(cohort_matrix))
    trial_list = read_trials(trials)
    scores = backend_scores(
        backend,
        list(ids),
        matrix,
        trial_list,
        cohort_data,
        norm=norm,
        topk=topk,
        device=device,
    )
    write_scores(out, trial_list, scores)
    if report is not None:
        verification_report(trial_list, scores, report, title=backend.kind)
    return scores
