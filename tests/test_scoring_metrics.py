"""Metrics against SpeechBrain, scikit-learn and brute-force references."""

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_curve
from speechbrain.utils import metric_stats as sb

from emotion_invariant.scoring import (
    EER,
    ScoringError,
    act_dcf,
    cllr,
    det_curve,
    eer,
    metrics_by_group,
    min_dcf,
    minDCF,
    verification_metrics,
)


def score_sets():
    """Random and tied score sets of several sizes and balances."""
    gen = torch.Generator().manual_seed(0)
    sets = []
    for n, p_target, tie in [
        (1500, 0.1, None),
        (800, 0.5, None),
        (1200, 0.3, 10),
        (900, 0.05, 4),
        (600, 0.5, 2),
        (40, 0.5, 1),
    ]:
        labels = torch.rand(n, generator=gen) < p_target
        labels[:2] = torch.tensor([True, False])
        scores = torch.randn(n, generator=gen) + 1.5 * labels
        if tie is not None:
            scores = torch.round(scores * tie) / tie
        sets.append((scores, labels))
    return sets


SETS = score_sets()


def brute_force(scores, labels, p_target=0.01, c_miss=1.0, c_fa=1.0):
    """Every distinct score as threshold, in float64; accept if above."""
    s = scores.double().numpy()
    y = labels.numpy()
    best = (math.inf, None)
    rates = []
    for t in np.unique(s):
        p_miss = np.mean(s[y] <= t)
        p_fa = np.mean(s[~y] > t)
        rates.append((t, p_miss, p_fa))
        cost = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)
        if cost < best[0] - 1e-12:
            best = (cost, t)
    return best, rates


@pytest.mark.parametrize("index", range(len(SETS)))
def test_eer_and_mindcf_match_speechbrain(index):
    scores, labels = SETS[index]
    pos, neg = scores[labels], scores[~labels]
    ours, theirs = EER(pos, neg), sb.EER(pos, neg)
    assert ours[0] == pytest.approx(theirs[0], abs=1e-4)
    assert ours[1] == theirs[1]
    for kwargs in ({}, {"p_target": 0.05, "c_miss": 10.0, "c_fa": 1.0}):
        ours, theirs = minDCF(pos, neg, **kwargs), sb.minDCF(pos, neg, **kwargs)
        assert ours[0] == pytest.approx(theirs[0], abs=1e-4)
        assert ours[1] == theirs[1]


def test_dropins_return_python_floats_like_speechbrain():
    pos, neg = torch.tensor([0.6, 0.7, 0.8, 0.5]), torch.tensor([0.4, 0.3])
    for ours, theirs in (
        (EER(pos, neg), sb.EER(pos, neg)),
        (minDCF(pos, neg), sb.minDCF(pos, neg)),
    ):
        assert type(ours) is type(theirs) is tuple
        assert all(type(x) is float for x in ours)
        assert ours == theirs


@pytest.mark.parametrize("index", range(len(SETS)))
def test_eer_matches_sklearn_roc(index):
    scores, labels = SETS[index]
    fpr, tpr, _ = roc_curve(
        labels.numpy(), scores.numpy(), drop_intermediate=False
    )
    gap = np.abs((1 - tpr) - fpr)
    i = int(np.argmin(gap))
    value, threshold = eer(scores, labels)
    assert value == pytest.approx((fpr[i] + 1 - tpr[i]) / 2, abs=1e-4)
    # the threshold reproduces the EER operating point (accept above it)
    p_miss = float((scores[labels] <= threshold).double().mean())
    p_fa = float((scores[~labels] > threshold).double().mean())
    assert abs(p_fa - p_miss) == pytest.approx(gap[i], abs=1e-6)


@pytest.mark.parametrize("index", range(len(SETS)))
def test_min_dcf_matches_brute_force(index):
    scores, labels = SETS[index]
    for p_target, c_miss in ((0.01, 1.0), (0.2, 3.0)):
        (cost, t), _ = brute_force(scores, labels, p_target, c_miss)
        value, threshold = min_dcf(scores, labels, p_target, c_miss)
        assert value == pytest.approx(cost, abs=1e-6)
        normalized, _ = min_dcf(
            scores, labels, p_target, c_miss, normalized=True
        )
        norm = min(c_miss * p_target, 1 - p_target)
        assert normalized == pytest.approx(cost / norm, rel=1e-5)


def test_act_dcf_and_cllr_match_direct_formulas():
    scores, labels = SETS[0]
    s, y = scores.double().numpy(), labels.numpy()
    for t in (-0.5, 0.3, 1.2):
        expected = 0.01 * np.mean(s[y] <= t) + 0.99 * np.mean(s[~y] > t)
        assert act_dcf(scores, labels, t) == pytest.approx(expected, rel=1e-9)
        assert act_dcf(scores, labels, t, normalized=True) == pytest.approx(
            expected / 0.01, rel=1e-9
        )
    expected = 0.5 * (
        np.mean(np.log2(1 + np.exp(-s[y])))
        + np.mean(np.log2(1 + np.exp(s[~y])))
    )
    assert cllr(scores, labels) == pytest.approx(expected, rel=1e-9)
    # well-separated, large LLRs cost almost nothing; uninformative ones 1 bit
    assert cllr([30.0, -30.0], [1, 0]) < 1e-9
    assert cllr([0.0, 0.0], [1, 0]) == pytest.approx(1.0)


def test_det_curve_points_and_decimation():
    scores, labels = SETS[2]
    p_fa, p_miss, thresholds = det_curve(scores, labels)
    _, rates = brute_force(scores, labels)
    assert p_fa[0] == 1 and p_miss[0] == 0 and thresholds[0] == -math.inf
    assert np.allclose(p_miss[1:].numpy(), [r[1] for r in rates])
    assert np.allclose(p_fa[1:].numpy(), [r[2] for r in rates])
    assert bool(
        (torch.diff(p_fa) <= 0).all() and (torch.diff(p_miss) >= 0).all()
    )
    few = det_curve(scores, labels, max_points=10)
    assert 2 <= len(few[0]) <= 10
    # decimated points are a subset of the full curve, ends included
    full = set(zip(p_fa.tolist(), p_miss.tolist()))
    assert set(zip(few[0].tolist(), few[1].tolist())) <= full
    assert few[0][0] == 1 and few[1][-1] == 1


def test_verification_metrics_and_groups_agree_with_single_calls():
    scores, labels = SETS[1]
    m = verification_metrics(scores, labels)
    assert (m["eer"], m["eer_threshold"]) == eer(scores, labels)
    value, threshold = min_dcf(scores, labels, normalized=True)
    assert m["min_dcf"] == pytest.approx(value)
    assert m["min_dcf_threshold"] == threshold
    assert m["act_dcf"] == pytest.approx(m["min_dcf"])
    assert m["n_target"] == int(labels.sum())
    half = torch.arange(len(scores)) % 2 == 0
    groups = metrics_by_group(
        scores,
        labels,
        {"all": torch.ones_like(half), "half": half},
        threshold="all",
        det_points=20,
    )
    sub = verification_metrics(scores[half], labels[half], threshold=threshold)
    got = {k: v for k, v in groups["half"].items() if k != "det"}
    assert got == pytest.approx(sub)
    assert groups["half"]["act_dcf_threshold"] == threshold
    assert len(groups["all"]["det"]["p_fa"]) <= 20


def test_metrics_run_on_float64_and_keep_thresholds_exact():
    scores = torch.tensor([0.1, 0.25, 0.3, 0.7], dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 1])
    assert eer(scores, labels) == sb.EER(
        scores[labels == 1], scores[labels == 0]
    )


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        ([0.1, 0.2], [1, 1], "need target and non-target"),
        ([0.1, float("nan")], [1, 0], "NaN"),
        ([0.1, 0.2], [1, 2], "0 or 1"),
        ([0.1, 0.2], [1], "equal length"),
    ],
)
def test_bad_metric_input(scores, labels, message):
    with pytest.raises(ScoringError, match=message):
        eer(scores, labels)


def test_eer_ties_resolve_like_speechbrain():
    # Small, heavily tied sets: where two thresholds are equally far from
    # FAR = FRR, SpeechBrain's float32 scan decides; so must we.
    gen = torch.Generator().manual_seed(5)
    for _ in range(200):
        n = int(torch.randint(4, 60, (1,), generator=gen))
        labels = torch.rand(n, generator=gen) < 0.5
        labels[:2] = torch.tensor([True, False])
        scores = torch.round(torch.randn(n, generator=gen) * 2) / 2 + labels
        pos, neg = scores[labels], scores[~labels]
        assert EER(pos, neg) == sb.EER(pos, neg)
        assert minDCF(pos, neg, p_target=0.3) == sb.minDCF(
            pos, neg, p_target=0.3
        )
