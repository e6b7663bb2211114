"""Score normalisation with an impostor cohort: z-, t-, s- and AS-norm.

Z-norm standardises a score with the enrolment utterance's scores against a
cohort, t-norm with the test utterance's, s-norm averages the two, and
adaptive s-norm (Matejka et al., Interspeech 2017) takes each side's
statistics over its top-k cohort scores only. A cohort statistic depends on
one utterance, not on the trial, so it is computed once per utterance, by
one chunked matrix product against the cohort, and gathered per trial.
Standard deviations are unbiased, as ``torch.std`` in SpeechBrain's recipe.
"""

import os

import torch

from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.scoring.cosine import chunk_rows
from emotion_invariant.scoring.embeddings import (
    check_embeddings,
    load_embeddings,
)
from emotion_invariant.scoring.errors import ScoringError

NORMS = ("none", "z", "t", "s", "as")
CPU_STATS_BYTES = 1 << 26


def check_norm(norm, topk=None, cohort_size=None):
    """Validate a normalisation name against ``topk`` and the cohort size.

    Example
    -------
    >>> check_norm("as", topk=300, cohort_size=100)
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: adaptive s-norm needs \
topk (300) <= cohort size (100); lower topk or use a larger cohort
    """
    if norm not in NORMS:
        raise ScoringError(
            f"unknown norm {norm!r}; use one of {' '.join(NORMS)}"
        )
    if norm == "none" or cohort_size is None:
        return
    if cohort_size < 2:
        raise ScoringError(
            f"{norm}-norm needs a cohort of at least 2 utterances, got "
            f"{cohort_size}"
        )
    if norm == "as":
        if topk is None or int(topk) < 2:
            raise ScoringError(f"adaptive s-norm needs topk >= 2, got {topk}")
        if topk > cohort_size:
            raise ScoringError(
                f"adaptive s-norm needs topk ({topk}) <= cohort size "
                f"({cohort_size}); lower topk or use a larger cohort"
            )


def resolve_cohort(cohort, ids, embeddings, source="<embeddings>"):
    """Cohort embeddings from a file, a manifest, ids or a matrix.

    Arguments
    ---------
    cohort : str or sequence of str or tuple or torch.Tensor
        A ``.npz``/``.pt`` embedding file; a ``.csv`` manifest whose ``ID``
        column names rows of the scored embeddings; a list of such ids;
        an ``(ids, embeddings)`` pair; or a ``[M, D]`` matrix.
    ids : sequence of str
        Ids of the scored embeddings.
    embeddings : torch.Tensor
        The scored embeddings ``[N, D]``.
    source : str
        Name of the scored embedding file, for messages.

    Returns
    -------
    torch.Tensor
        ``[M, D]`` cohort embeddings (not yet normalised).

    Example
    -------
    >>> emb = torch.eye(3)
    >>> resolve_cohort(["c", "a"], ["a", "b", "c"], emb)
    tensor([[0., 0., 1.],
            [1., 0., 0.]])
    """
    name = "cohort"
    if isinstance(cohort, (str, os.PathLike)):
        name = os.fspath(cohort)
        if name.lower().endswith(".csv"):
            rows = read_manifest(name, allow_empty_emo=True)
            cohort = [row["ID"] for row in rows]
        else:
            cohort = load_embeddings(name)
    if isinstance(cohort, tuple) and len(cohort) == 2:
        cohort = check_embeddings(cohort[0], cohort[1], name)[1]
    if isinstance(cohort, torch.Tensor):
        matrix = check_embeddings(
            [f"row{i}" for i in range(len(cohort))], cohort, name
        )[1]
    else:
        index = {x: i for i, x in enumerate(ids)}
        cohort = list(cohort)
        missing = [x for x in cohort if x not in index]
        if missing:
            shown = ", ".join(repr(x) for x in missing[:5])
            raise ScoringError(
                f"{name}: {len(missing)} cohort id(s) not in {source}, "
                f"e.g. {shown}"
            )
        if len(set(cohort)) != len(cohort):
            raise ScoringError(f"{name}: the cohort lists an id twice")
        matrix = embeddings[torch.tensor([index[x] for x in cohort])]
    if matrix.shape[1] != embeddings.shape[1]:
        raise ScoringError(
            f"{name}: cohort dimension {matrix.shape[1]} differs from the "
            f"embeddings' {embeddings.shape[1]} in {source}"
        )
    return matrix


def cohort_stats(unit, cohort, topk=None, chunk_size=None):
    """Mean and std of each row's cosine scores against a cohort.

    Arguments
    ---------
    unit : torch.Tensor
        ``[Q, D]`` L2-normalised utterance embeddings.
    cohort : torch.Tensor
        ``[M, D]`` L2-normalised cohort, on ``unit``'s device.
    topk : int, optional
        Use only each row's ``topk`` highest cohort scores (AS-norm).
    chunk_size : int, optional
        Rows per matrix product; sized to memory by default.

    Returns
    -------
    mean, std : torch.Tensor
        ``[Q]`` each.

    Example
    -------
    >>> unit = torch.tensor([[1.0, 0.0]])
    >>> cohort = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    >>> cohort_stats(unit, cohort)
    (tensor([0.]), tensor([1.]))
    >>> cohort_stats(unit, cohort, topk=2)
    (tensor([0.5000]), tensor([0.7071]))
    """
    if chunk_size is None:
        budget = None if unit.device.type == "cuda" else CPU_STATS_BYTES
        # the score block, plus top-k's values and indices
        chunk_size = chunk_rows(3 * len(cohort) * 4, unit.device, budget)
    means, stds = [], []
    for start in range(0, len(unit), chunk_size):
        block = unit[start : start + chunk_size] @ cohort.T
        if topk is not None:
            block = torch.topk(block, int(topk), dim=1, sorted=False).values
        std, mean = torch.std_mean(block, dim=1)
        means.append(mean)
        stds.append(std)
    return torch.cat(means), torch.cat(stds)


def normalize_scores(scores, enrol_stats, test_stats, norm):
    """Apply z-, t- or s-norm to trial scores with per-trial statistics.

    Arguments
    ---------
    scores : torch.Tensor
        ``[T]`` raw scores.
    enrol_stats, test_stats : tuple of torch.Tensor
        ``(mean [T], std [T])`` of each trial's enrolment and test utterance
        against the cohort.
    norm : str
        ``z``, ``t``, ``s`` or ``as`` (``as`` is s-norm on top-k statistics).

    Returns
    -------
    torch.Tensor
        ``[T]`` normalised scores.

    Example
    -------
    >>> s = torch.tensor([0.5])
    >>> e, t = (torch.tensor([0.1]), torch.tensor([0.2])), (
    ...     torch.tensor([0.3]), torch.tensor([0.1]))
    >>> normalize_scores(s, e, t, "s")
    tensor([2.])
    """
    check_norm(norm)
    if norm == "none":
        return scores
    z = (scores - enrol_stats[0]) / enrol_stats[1]
    if norm == "z":
        return z
    t = (scores - test_stats[0]) / test_stats[1]
    if norm == "t":
        return t
    return 0.5 * (z + t)
