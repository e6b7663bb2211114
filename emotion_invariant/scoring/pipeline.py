"""Score a trial list from an embedding store, with optional normalisation.

Ties the steps together: ids are mapped to rows once, only the rows the
trials use are moved to the scoring device and L2-normalised once, trials are
cosine-scored by gather + dot in chunks, and cohort statistics (if any) are
computed once per utterance.
"""

import os

import torch

from emotion_invariant.scoring.cosine import (
    cosine_scores,
    l2_normalize,
    resolve_device,
)
from emotion_invariant.scoring.embeddings import (
    check_embeddings,
    load_embeddings,
)
from emotion_invariant.scoring.errors import ScoringError
from emotion_invariant.scoring.norm import (
    check_norm,
    cohort_stats,
    normalize_scores,
    resolve_cohort,
)
from emotion_invariant.scoring.trial_list import as_trials, trial_rows


def as_embeddings(embeddings):
    """Accept an embedding file path, an ``(ids, embeddings)`` pair, or an
    ``(ids, embeddings, name)`` triple naming where they came from.

    Returns
    -------
    ids : list of str
    embeddings : torch.Tensor
    source : str
        The file name, or ``<embeddings>``.

    Example
    -------
    >>> as_embeddings((["a"], torch.ones(1, 2)))[2]
    '<embeddings>'
    >>> as_embeddings((["a"], torch.ones(1, 2), "emb.npz"))[2]
    'emb.npz'
    """
    if isinstance(embeddings, (str, os.PathLike)):
        source = os.fspath(embeddings)
        return (*load_embeddings(source), source)
    if not isinstance(embeddings, (tuple, list)) or len(embeddings) not in (
        2,
        3,
    ):
        raise ScoringError(
            "embeddings must be a file path, an (ids, embeddings) pair or "
            "an (ids, embeddings, name) triple"
        )
    source = embeddings[2] if len(embeddings) == 3 else "<embeddings>"
    return (*check_embeddings(*embeddings[:2], source), source)


def score_trials(
    embeddings,
    trials,
    norm="none",
    cohort=None,
    topk=300,
    device=None,
    subtract_mean=False,
    chunk_size=None,
):
    """Cosine scores of a trial list, optionally z/t/s/AS-normalised.

    Arguments
    ---------
    embeddings : str or tuple
        An embedding file (``.npz``/``.pt``), ``(ids, embeddings)`` or
        ``(ids, embeddings, name)`` (see :func:`as_embeddings`).
    trials : Trials or str or list of tuple
        The trial list: a :class:`Trials`, a file or ``(label, enrol,
        test[, condition])`` records.
    norm : str
        ``none``, ``z``, ``t``, ``s`` or ``as`` (adaptive s-norm).
    cohort : optional
        Impostor cohort for normalisation: see
        :func:`~emotion_invariant.scoring.norm.resolve_cohort`.
    topk : int
        Cohort scores kept per utterance for ``as``.
    device : str, optional
        ``cpu`` or ``cuda``; ``cuda`` when available by default. Results
        agree across devices up to float32 rounding.
    subtract_mean : bool
        Subtract the mean embedding (of the cohort if given, else of all the
        stored embeddings) before length normalisation.
    chunk_size : int, optional
        Trials per gather; sized to cache/memory by default.

    Returns
    -------
    torch.Tensor
        float32 ``[T]`` scores on the CPU, in trial order.

    Example
    -------
    >>> emb = (["a", "b", "c"], torch.tensor([[1.0, 0], [1, 1], [0, 1]]))
    >>> score_trials(emb, [(1, "a", "b"), (0, "a", "c")], device="cpu")
    tensor([0.7071, 0.0000])
    """
    device = resolve_device(device)
    ids, matrix, source = as_embeddings(embeddings)
    trials = as_trials(trials)
    check_norm(norm, topk)
    name_rows = trial_rows(trials, ids, source)
    cohort_matrix = None
    if norm != "none" or (subtract_mean and cohort is not None):
        if cohort is None:
            raise ScoringError(f"{norm}-norm needs a cohort")
        cohort_matrix = resolve_cohort(cohort, ids, matrix, source)
        check_norm(norm, topk, len(cohort_matrix))
    # one vector per distinct utterance id, indexed by the trials' codes;
    # a name no remaining trial uses may be missing (-1): any row will do
    vectors = matrix[name_rows.clamp(min=0)].to(device)
    if subtract_mean:
        pool = matrix if cohort_matrix is None else cohort_matrix
        mean = pool.to(device).mean(dim=0)
        vectors = vectors - mean
        if cohort_matrix is not None:
            cohort_matrix = cohort_matrix.to(device) - mean
    unit = l2_normalize(vectors, trials.names, source)
    enrol = torch.from_numpy(trials.enrol).to(device)
    test = torch.from_numpy(trials.test).to(device)
    scores = cosine_scores(unit, enrol, test, chunk_size)
    if norm != "none":
        cohort_unit = l2_normalize(cohort_matrix.to(device), None, "cohort")
        mean, std = cohort_stats(
            unit, cohort_unit, topk if norm == "as" else None
        )
        flat = ~(std > 0)
        if bool(flat.any()):
            rows = torch.nonzero(flat).squeeze(1).tolist()
            names = [trials.names[i] for i in rows]
            raise ScoringError(
                f"{source}: cohort scores have zero spread for "
                f"{len(names)} utterance(s), e.g. {names[0]!r}; "
                f"{norm}-norm would divide by zero"
            )
        scores = normalize_scores(
            scores, (mean[enrol], std[enrol]), (mean[test], std[test]), norm
        )
    return scores.cpu()
