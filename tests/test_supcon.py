"""Supervised contrastive loss with angular margin, against a naive loop."""

import math

import pytest
import torch
from speechbrain.nnet.losses import AdditiveAngularMargin

from emotion_invariant.losses.supcon import SupConLoss


def _margined(c, margin):
    """cos(theta + m) with ArcFace's fallback past pi, from acos."""
    if margin == 0:
        return c
    theta = math.acos(max(-1.0, min(1.0, c)))
    if theta + margin < math.pi:
        return math.cos(theta + margin)
    return c - math.sin(math.pi - margin) * margin


def _naive_supcon(features, labels, temperature, margin, mode, base=None):
    """Khosla et al.'s loss written anchor by anchor in plain Python."""
    base = temperature if base is None else base
    n_utts, n_views, _ = features.shape
    rows = []
    for v in range(n_views):
        for b in range(n_utts):
            z = features[b, v].tolist()
            norm = math.sqrt(sum(t * t for t in z))
            rows.append(([t / norm for t in z], int(labels[b])))
    anchors = range(n_utts) if mode == "one" else range(len(rows))
    losses = []
    for i in anchors:
        zi, yi = rows[i]
        logits, positives = [], []
        for a, (za, ya) in enumerate(rows):
            if a == i:
                continue
            c = sum(p * q for p, q in zip(zi, za))
            if ya == yi:
                c = _margined(c, margin)
                positives.append(len(logits))
            logits.append(c / temperature)
        if not positives:
            continue
        log_denominator = math.log(sum(math.exp(t) for t in logits))
        mean = sum(logits[p] - log_denominator for p in positives)
        losses.append(-(temperature / base) * mean / len(positives))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("mode", ["all", "one"])
@pytest.mark.parametrize("margin", [0.0, 0.2, 0.5])
@pytest.mark.parametrize("n_views", [1, 2, 3])
def test_matches_naive_loop(mode, margin, n_views):
    torch.manual_seed(7 + n_views)
    features = torch.randn(6, n_views, 5, dtype=torch.float64)
    labels = torch.tensor([0, 1, 0, 2, 1, 3])
    loss = SupConLoss(temperature=0.3, margin=margin, contrast_mode=mode)
    expected = _naive_supcon(features, labels, 0.3, margin, mode)
    assert loss(features, labels).item() == pytest.approx(expected, rel=1e-5)


def test_margin_fallback_past_pi_matches_naive_loop():
    # Opposite positives: theta + margin > pi takes the threshold fallback.
    features = torch.tensor(
        [[[1.0, 0.0], [-1.0, 0.01]], [[0.0, 1.0], [0.3, -1.0]]],
        dtype=torch.float64,
    )
    labels = torch.tensor([0, 1])
    loss = SupConLoss(temperature=0.5, margin=0.4)(features, labels)
    expected = _naive_supcon(features, labels, 0.5, 0.4, "all")
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_base_temperature_scales_loss():
    torch.manual_seed(1)
    features = torch.randn(5, 2, 4)
    labels = torch.tensor([0, 1, 0, 1, 2])
    plain = SupConLoss(temperature=0.1, margin=0.1)(features, labels)
    scaled = SupConLoss(temperature=0.1, margin=0.1, base_temperature=0.07)
    assert scaled(features, labels).item() == pytest.approx(
        plain.item() * 0.1 / 0.07, rel=1e-6
    )
    expected = _naive_supcon(features.double(), labels, 0.1, 0.1, "all", 0.07)
    assert scaled(features, labels).item() == pytest.approx(expected, rel=1e-4)


def test_positive_cosines_agree_with_speechbrain_aam():
    # The loss takes its margined cosines from SpeechBrain's AAM: it must be
    # the acos-based cos(theta + m), with the fallback, of the naive loop.
    torch.manual_seed(2)
    cos = torch.rand(50) * 2 - 1
    targets = torch.ones(50, 1)
    sb = AdditiveAngularMargin(margin=0.3)(cos.unsqueeze(1), targets)
    naive = torch.tensor([_margined(c, 0.3) for c in cos.tolist()])
    assert torch.allclose(sb.squeeze(1), naive, atol=1e-5)


def test_invariant_to_batch_order():
    torch.manual_seed(3)
    features = torch.randn(8, 2, 6)
    labels = torch.tensor([0, 1, 2, 0, 1, 2, 3, 3])
    perm = torch.randperm(8)
    for mode in ("all", "one"):
        loss = SupConLoss(margin=0.2, contrast_mode=mode)
        assert torch.allclose(
            loss(features, labels), loss(features[perm], labels[perm])
        )
    flat = features[:, 0]
    loss = SupConLoss(margin=0.2)
    assert torch.allclose(loss(flat, labels), loss(flat[perm], labels[perm]))


def test_views_layout_equals_flat_layout_in_all_mode():
    torch.manual_seed(4)
    features = torch.randn(4, 3, 5)
    labels = torch.tensor([0, 1, 1, 2])
    flat = features.transpose(0, 1).reshape(12, 5)
    flat_labels = labels.repeat(3)
    loss = SupConLoss(margin=0.2)
    assert torch.allclose(loss(features, labels), loss(flat, flat_labels))
    ecapa_shaped = flat.unsqueeze(1)
    assert torch.allclose(
        loss(ecapa_shaped, flat_labels.unsqueeze(1)), loss(flat, flat_labels)
    )


def test_gradient_finite_for_identical_embeddings():
    for labels in (torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 3])):
        features = torch.ones(4, 2, 3, requires_grad=True)
        for margin in (0.0, 0.2):
            features.grad = None
            loss = SupConLoss(margin=margin)(features, labels)
            loss.backward()
            assert torch.isfinite(loss)
            assert torch.isfinite(features.grad).all()


def test_gradient_finite_for_near_identical_and_opposite_embeddings():
    base = torch.tensor([1.0, 0.0, 0.0])
    features = torch.stack(
        [base, base + 1e-7, -base, -base + 1e-7, base * 3, -base * 2]
    ).reshape(3, 2, 3)
    features.requires_grad_(True)
    loss = SupConLoss(margin=0.3)(features, torch.tensor([0, 0, 1]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all()


def test_margin_increases_loss():
    torch.manual_seed(5)
    for _ in range(5):
        features = torch.randn(6, 2, 8)
        labels = torch.randint(0, 3, (6,))
        losses = [
            SupConLoss(margin=m)(features, labels).item()
            for m in (0.0, 0.1, 0.3)
        ]
        assert losses[0] < losses[1] < losses[2]


def test_temperature_behaviour():
    # Clean clusters: the loss falls to its floor, -log(1 / |P|) averaged
    # over positives, i.e. log of the positive count, as temperature -> 0.
    centres = torch.eye(3)
    features = centres.repeat_interleave(2, 0).unsqueeze(1).repeat(1, 2, 1)
    features = features + 1e-3 * torch.randn(6, 2, 3)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    values = [
        SupConLoss(temperature=t, margin=0.0)(features, labels).item()
        for t in (1.0, 0.3, 0.1, 0.03)
    ]
    assert all(b < a for a, b in zip(values, values[1:]))
    assert values[-1] == pytest.approx(math.log(3), abs=1e-3)
    # At a very high temperature every logit is equal: log(N - 1) per
    # positive pair, whatever the features.
    high = SupConLoss(temperature=1e6, margin=0.0)(features, labels)
    assert high.item() == pytest.approx(math.log(11), abs=1e-4)


def test_anchors_without_positives_are_excluded():
    torch.manual_seed(6)
    features = torch.randn(5, 5)
    labels = torch.tensor([0, 0, 1, 2, 3])
    loss = SupConLoss(margin=0.2)
    only_pair = _naive_supcon(
        features.unsqueeze(1).double(), labels, 0.1, 0.2, "all"
    )
    assert loss(features, labels).item() == pytest.approx(only_pair, rel=1e-4)


def test_no_positive_gives_attached_zero():
    features = torch.randn(4, 3, requires_grad=True)
    loss = SupConLoss()(features, torch.tensor([0, 1, 2, 3]))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(features.grad, torch.zeros(4, 3))


def test_labels_none_is_self_supervised():
    torch.manual_seed(8)
    features = torch.randn(4, 2, 5)
    loss = SupConLoss(margin=0.1)
    assert torch.allclose(loss(features), loss(features, torch.arange(4)))


def test_runs_under_float16_features_in_float32():
    torch.manual_seed(9)
    features = torch.randn(4, 2, 8)
    labels = torch.tensor([0, 1, 0, 1])
    loss = SupConLoss()
    half = loss(features.half(), labels)
    assert half.dtype == torch.float32
    assert half.item() == pytest.approx(loss(features, labels).item(), rel=1e-2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"temperature": 0.0}, "temperature"),
        ({"margin": -0.1}, "margin"),
        ({"contrast_mode": "any"}, "contrast_mode"),
        ({"base_temperature": -1.0}, "base_temperature"),
    ],
)
def test_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SupConLoss(**kwargs)


def test_bad_shapes():
    loss = SupConLoss()
    with pytest.raises(ValueError, match=r"\[B, V, D\]"):
        loss(torch.randn(2, 2, 2, 2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels must be \[3\]"):
        loss(torch.randn(3, 2, 4), torch.tensor([0, 1]))
