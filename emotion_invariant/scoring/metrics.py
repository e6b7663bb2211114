"""Verification metrics by one sort and a cumulative sum.

EER, minDCF, actDCF, Cllr and DET points in O(N log N) time and O(N) memory:
scores are sorted once, and miss / false-alarm counts at every distinct score
come from a cumulative sum of the sorted labels. A trial is accepted when its
score is strictly above the threshold, as in SpeechBrain's
``speechbrain.utils.metric_stats.EER`` and ``minDCF``, whose values and
thresholds these functions reproduce (SpeechBrain loops over ~2N thresholds
for the EER and builds a thresholds x scores matrix for minDCF).
"""

import functools
import math
from typing import NamedTuple

import torch

from emotion_invariant.scoring.errors import ScoringError
from emotion_invariant.scoring.threads import one_cpu_thread

METRIC_KEYS = (
    "n_target",
    "n_nontarget",
    "eer",
    "eer_threshold",
    "min_dcf",
    "min_dcf_threshold",
    "act_dcf",
    "act_dcf_threshold",
    "cllr",
)

# Docstring examples: four non-targets, then four targets.
SCORES = [0.1, 0.3, 0.4, 0.6, 0.2, 0.5, 0.7, 0.8]
LABELS = [0, 0, 0, 0, 1, 1, 1, 1]


def _single_threaded(fn):
    # defined here, not imported, so that doctest still finds the examples
    @functools.wraps(fn)
    def run(*args, **kwargs):
        with one_cpu_thread():
            return fn(*args, **kwargs)

    return run


class OperatingPoints(NamedTuple):
    """Error counts at every distinct score, as threshold.

    Attributes
    ----------
    thresholds : torch.Tensor
        Distinct scores, ascending.
    misses : torch.Tensor
        int64, targets with score <= threshold (rejected).
    false_alarms : torch.Tensor
        int64, non-targets with score > threshold (accepted).
    n_target : int
    n_nontarget : int
    """

    thresholds: torch.Tensor
    misses: torch.Tensor
    false_alarms: torch.Tensor
    n_target: int
    n_nontarget: int


def _check(scores, labels):
    scores = torch.as_tensor(scores)
    if not scores.is_floating_point():
        scores = scores.float()
    labels = torch.as_tensor(labels, device=scores.device)
    if scores.dim() != 1 or scores.shape != labels.shape:
        raise ScoringError(
            f"scores {tuple(scores.shape)} and labels {tuple(labels.shape)} "
            "must be 1-D of equal length"
        )
    if labels.dtype != torch.bool:
        if not bool(((labels == 0) | (labels == 1)).all()):
            raise ScoringError("labels must be 0 or 1")
        labels = labels.bool()
    if not bool(torch.isfinite(scores).all()):
        raise ScoringError("scores contain NaN or inf")
    return scores, labels


@_single_threaded
def sort_scores(scores, labels):
    """Scores in ascending order with their labels.

    Arguments
    ---------
    scores : torch.Tensor or array-like
        ``[N]`` finite scores.
    labels : torch.Tensor or array-like
        ``[N]`` 0/1 or bool, 1 for target trials.

    Returns
    -------
    scores, labels : torch.Tensor
        Sorted scores and bool labels (any subset of them stays sorted).

    Example
    -------
    >>> sort_scores([0.3, 0.1], [1, 0])
    (tensor([0.1000, 0.3000]), tensor([False,  True]))
    """
    scores, labels = _check(scores, labels)
    scores, order = torch.sort(scores)
    return scores, labels[order]


@_single_threaded
def operating_points(scores, labels, presorted=False):
    """Miss and false-alarm counts at each distinct score.

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 (or bool) labels.
    presorted : bool
        The scores are ascending and labels bool (as from
        :func:`sort_scores`), so no sort is needed.

    Returns
    -------
    OperatingPoints

    Example
    -------
    >>> p = operating_points([0.1, 0.5, 0.5, 0.9], [0, 1, 0, 1])
    >>> p.thresholds, p.misses, p.false_alarms
    (tensor([0.1000, 0.5000, 0.9000]), tensor([0, 1, 2]), tensor([1, 0, 0]))
    """
    if not presorted:
        scores, labels = sort_scores(scores, labels)
    n_target = int(labels.sum())
    n_nontarget = len(labels) - n_target
    if n_target == 0 or n_nontarget == 0:
        raise ScoringError(
            f"need target and non-target scores, got {n_target} target and "
            f"{n_nontarget} non-target"
        )
    last = torch.ones_like(labels)
    last[:-1] = scores[1:] != scores[:-1]
    ends = torch.nonzero(last).squeeze(1)
    misses = torch.cumsum(labels, dim=0)[ends]
    false_alarms = n_nontarget - (ends + 1 - misses)
    return OperatingPoints(
        scores[ends], misses, false_alarms, n_target, n_nontarget
    )


def _rates(points):
    # float32 like SpeechBrain, so that near-ties resolve the same way
    p_miss = points.misses.float() / points.n_target
    p_fa = points.false_alarms.float() / points.n_nontarget
    return p_miss, p_fa


def _eer_from_points(points, window=8):
    p_miss, p_fa = _rates(points)
    best = int(torch.argmin((p_fa.double() - p_miss.double()).abs()))
    lo = max(best - window, 0)
    hi = min(best + window + 1, len(p_miss))
    # SpeechBrain scans thresholds and their midpoints in order and keeps a
    # point when its float32 |FAR - FRR| is below the best so far in float64;
    # far from the minimum that is decided, near it ties go either way, so
    # the scan is replayed on a few points around it.
    thr = points.thresholds[lo:hi]
    mid = (thr[:-1] + thr[1:]) / 2
    gap32 = (p_fa[lo:hi] - p_miss[lo:hi]).abs().tolist()
    miss, fa = p_miss[lo:hi].tolist(), p_fa[lo:hi].tolist()
    mid_at_next = (mid >= thr[1:]).tolist()
    thr, mid = thr.tolist(), mid.tolist()
    chosen = (0, thr[0])
    for i in range(len(thr)):
        candidates = [(i, thr[i])] if i else []
        if i + 1 < len(thr):
            candidates.append((i + 1 if mid_at_next[i] else i, mid[i]))
        for j, value in candidates:
            if gap32[j] < abs(fa[chosen[0]] - miss[chosen[0]]):
                chosen = (j, value)
    j, threshold = chosen
    return (fa[j] + miss[j]) / 2, threshold


def _dcf_from_points(points, p_target, c_miss, c_fa):
    p_miss, p_fa = _rates(points)
    c_det = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    value, index = torch.min(c_det, dim=0)
    return float(value), float(points.thresholds[index])


def _dcf_norm(p_target, c_miss, c_fa):
    return min(c_miss * p_target, c_fa * (1 - p_target))


@_single_threaded
def eer(scores, labels):
    """Equal error rate and its threshold.

    The EER is ``(FAR + FRR) / 2`` at the threshold where ``|FAR - FRR|`` is
    smallest, with the threshold and tie-breaking of SpeechBrain's ``EER``.

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 labels (1 = target).

    Returns
    -------
    eer : float
        A fraction (0.05 is 5 %).
    threshold : float
        Scores above it are accepted.

    Example
    -------
    >>> value, threshold = eer(SCORES, LABELS)
    >>> value, round(threshold, 4)
    (0.25, 0.4)
    """
    return _eer_from_points(operating_points(scores, labels))


@_single_threaded
def min_dcf(
    scores, labels, p_target=0.01, c_miss=1.0, c_fa=1.0, normalized=False
):
    """Minimum detection cost over all thresholds.

    ``C_det = c_miss * P_miss * p_target + c_fa * P_fa * (1 - p_target)``.

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 labels (1 = target).
    p_target, c_miss, c_fa : float
        Target prior and error costs.
    normalized : bool
        Divide by ``min(c_miss * p_target, c_fa * (1 - p_target))``, the cost
        of always rejecting or always accepting (the NIST SRE convention).
        False gives SpeechBrain's ``minDCF`` value.

    Returns
    -------
    value : float
    threshold : float
        Scores above it are accepted.

    Example
    -------
    >>> value, threshold = min_dcf(SCORES, LABELS, p_target=0.5)
    >>> value, round(threshold, 4)
    (0.25, 0.4)
    """
    points = operating_points(scores, labels)
    value, threshold = _dcf_from_points(points, p_target, c_miss, c_fa)
    if normalized:
        value /= _dcf_norm(p_target, c_miss, c_fa)
    return value, threshold


@_single_threaded
def act_dcf(
    scores,
    labels,
    threshold,
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
    normalized=False,
):
    """Detection cost at a fixed threshold (accept scores above it).

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 labels (1 = target).
    threshold : float
        Decision threshold, e.g. one chosen on other data.
    p_target, c_miss, c_fa : float
        Target prior and error costs.
    normalized : bool
        Divide by ``min(c_miss * p_target, c_fa * (1 - p_target))``.

    Returns
    -------
    float

    Example
    -------
    >>> act_dcf(SCORES, LABELS, 0.55, p_target=0.5)
    0.375
    """
    scores, labels = _check(scores, labels)
    target, nontarget = scores[labels], scores[~labels]
    if len(target) == 0 or len(nontarget) == 0:
        raise ScoringError("actDCF needs target and non-target scores")
    p_miss = float((target <= threshold).double().mean())
    p_fa = float((nontarget > threshold).double().mean())
    value = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
    if normalized:
        value /= _dcf_norm(p_target, c_miss, c_fa)
    return value


@_single_threaded
def cllr(scores, labels):
    """Log-likelihood-ratio cost, in bits (Brummer and du Preez, 2006).

    Meaningful for scores calibrated as natural-log likelihood ratios; raw
    cosine scores give a figure that only compares like with like.

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 labels (1 = target).

    Returns
    -------
    float

    Example
    -------
    >>> round(cllr([0.0, 0.0], [1, 0]), 6)
    1.0
    """
    scores, labels = _check(scores, labels)
    scores = scores.double()
    target, nontarget = scores[labels], scores[~labels]
    if len(target) == 0 or len(nontarget) == 0:
        raise ScoringError("Cllr needs target and non-target scores")
    softplus = torch.nn.functional.softplus
    bits = softplus(-target).mean() + softplus(nontarget).mean()
    return float(bits) / (2 * math.log(2))


@_single_threaded
def det_curve(scores, labels, max_points=None, presorted=False):
    """DET operating points (false-alarm and miss rates), fewest first.

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 labels (1 = target).
    max_points : int, optional
        Keep about this many points, evenly spaced along the curve in
        normal-deviate (probit) coordinates, where DET plots are drawn.
    presorted : bool
        As in :func:`operating_points`.

    Returns
    -------
    p_fa, p_miss, thresholds : torch.Tensor
        float64 rates and the thresholds; the first point (accept every
        trial) has threshold ``-inf``.

    Example
    -------
    >>> p_fa, p_miss, _ = det_curve(SCORES, LABELS)
    >>> p_fa.tolist()
    [1.0, 0.75, 0.75, 0.5, 0.25, 0.25, 0.0, 0.0, 0.0]
    >>> p_miss.tolist()
    [0.0, 0.0, 0.25, 0.25, 0.25, 0.5, 0.5, 0.75, 1.0]
    """
    points = operating_points(scores, labels, presorted)
    device = points.thresholds.device
    p_fa = torch.cat(
        [
            torch.ones(1, dtype=torch.float64, device=device),
            points.false_alarms.double() / points.n_nontarget,
        ]
    )
    p_miss = torch.cat(
        [
            torch.zeros(1, dtype=torch.float64, device=device),
            points.misses.double() / points.n_target,
        ]
    )
    thresholds = torch.cat(
        [
            torch.full((1,), float("-inf"), device=device),
            points.thresholds.double(),
        ]
    )
    if max_points is not None and len(p_fa) > max_points:
        eps = 1e-9
        x = torch.special.ndtri(p_fa.clamp(eps, 1 - eps))
        y = torch.special.ndtri(p_miss.clamp(eps, 1 - eps))
        steps = torch.hypot(torch.diff(x), torch.diff(y))
        length = torch.cat(
            [torch.zeros(1, device=device), torch.cumsum(steps, 0)]
        )
        targets = torch.linspace(
            0, float(length[-1]), max_points, device=device
        )
        keep = torch.unique(
            torch.searchsorted(length, targets).clamp(max=len(x) - 1)
        )
        p_fa, p_miss, thresholds = p_fa[keep], p_miss[keep], thresholds[keep]
    return p_fa, p_miss, thresholds


@_single_threaded
def verification_metrics(
    scores,
    labels,
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
    threshold=None,
    presorted=False,
):
    """EER, normalised minDCF, actDCF and Cllr from one sort.

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 labels (1 = target).
    p_target, c_miss, c_fa : float
        DCF operating point.
    threshold : float, optional
        Threshold for actDCF; by default this set's own minDCF threshold.
    presorted : bool
        As in :func:`operating_points`.

    Returns
    -------
    dict
        ``n_target``, ``n_nontarget``, ``eer`` (fraction),
        ``eer_threshold``, ``min_dcf`` and ``act_dcf`` (normalised),
        ``min_dcf_threshold``, ``act_dcf_threshold`` and ``cllr``.

    Example
    -------
    >>> m = verification_metrics(SCORES, LABELS, p_target=0.5)
    >>> m["eer"], m["min_dcf"], m["n_target"]
    (0.25, 0.5, 4)
    """
    if not presorted:
        scores, labels = sort_scores(scores, labels)
    points = operating_points(scores, labels, presorted=True)
    eer_value, eer_threshold = _eer_from_points(points)
    dcf, dcf_threshold = _dcf_from_points(points, p_target, c_miss, c_fa)
    norm = _dcf_norm(p_target, c_miss, c_fa)
    if threshold is None:
        threshold = dcf_threshold
    return {
        "n_target": points.n_target,
        "n_nontarget": points.n_nontarget,
        "eer": eer_value,
        "eer_threshold": eer_threshold,
        "min_dcf": dcf / norm,
        "min_dcf_threshold": dcf_threshold,
        "act_dcf": act_dcf(scores, labels, threshold, p_target, c_miss, c_fa)
        / norm,
        "act_dcf_threshold": float(threshold),
        "cllr": cllr(scores, labels),
    }


@_single_threaded
def metrics_by_group(
    scores,
    labels,
    masks,
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
    threshold=None,
    det_points=None,
):
    """:func:`verification_metrics` for several subsets, sorting once.

    Arguments
    ---------
    scores, labels : torch.Tensor or array-like
        ``[N]`` scores and 0/1 labels (1 = target).
    masks : dict
        Group name -> bool ``[N]`` mask of its trials.
    p_target, c_miss, c_fa : float
        DCF operating point.
    threshold : float or str, optional
        actDCF threshold shared by all groups; a group name means that
        group's minDCF threshold; None gives each group its own.
    det_points : int, optional
        Also return about this many DET points per group (see
        :func:`det_curve`) as ``det``: ``{"p_fa": [...], "p_miss": [...]}``.

    Returns
    -------
    dict
        Group name -> metrics dict, in the order of ``masks``; a group
        without both target and non-target trials has only its counts and
        None elsewhere.

    Example
    -------
    >>> groups = metrics_by_group(SCORES, LABELS, {
    ...     "all": [True] * 8, "targets": [False] * 4 + [True] * 4})
    >>> groups["all"]["eer"], groups["targets"]["eer"]
    (0.25, None)
    """
    scores, labels = _check(scores, labels)
    scores, order = torch.sort(scores)
    labels = labels[order]

    def subset(name):
        mask = torch.as_tensor(masks[name], dtype=torch.bool)
        mask = mask.to(scores.device)[order]
        return scores[mask], labels[mask]

    if isinstance(threshold, str):
        points = operating_points(*subset(threshold), presorted=True)
        threshold = _dcf_from_points(points, p_target, c_miss, c_fa)[1]
    results = {}
    for name in masks:
        group_scores, group_labels = subset(name)
        n_target = int(group_labels.sum())
        n_nontarget = len(group_labels) - n_target
        if not (n_target and n_nontarget):
            results[name] = {
                "n_target": n_target,
                "n_nontarget": n_nontarget,
                **dict.fromkeys(METRIC_KEYS[2:]),
            }
            continue
        results[name] = verification_metrics(
            group_scores,
            group_labels,
            p_target,
            c_miss,
            c_fa,
            threshold,
            presorted=True,
        )
        if det_points is not None:
            p_fa, p_miss, _ = det_curve(
                group_scores, group_labels, det_points, presorted=True
            )
            results[name]["det"] = {
                "p_fa": p_fa.tolist(),
                "p_miss": p_miss.tolist(),
            }
    return results
