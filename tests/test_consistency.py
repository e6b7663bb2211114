"""Tests for the cosine consistency (ERL) loss."""

import math

import pytest
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from emotion_invariant.losses.consistency import cosine_consistency


def naive(anchor, parallel, mask=None):
    """1 - cos per pair by plain Python arithmetic, averaged over the mask."""
    total, count = 0.0, 0
    for i in range(len(anchor)):
        if mask is not None and not mask[i]:
            continue
        a, p = anchor[i].tolist(), parallel[i].tolist()
        dot = sum(x * y for x, y in zip(a, p))
        norms = math.sqrt(sum(x * x for x in a)) * math.sqrt(
            sum(y * y for y in p)
        )
        total += 1.0 - dot / norms
        count += 1
    return total / count if count else 0.0


def test_matches_naive_loop():
    torch.manual_seed(0)
    for _ in range(5):
        anchor, parallel = torch.randn(7, 5), torch.randn(7, 5)
        mask = torch.rand(7) < 0.5
        mask[0] = True
        got = cosine_consistency(anchor, parallel)
        assert float(got) == pytest.approx(naive(anchor, parallel), abs=1e-6)
        got = cosine_consistency(anchor, parallel, mask)
        assert float(got) == pytest.approx(
            naive(anchor, parallel, mask), abs=1e-6
        )


def test_zero_for_identical_and_accepts_ecapa_shape():
    torch.manual_seed(1)
    emb = torch.randn(4, 1, 6)
    assert float(cosine_consistency(emb, emb.clone())) == pytest.approx(
        0.0, abs=1e-6
    )
    assert float(cosine_consistency(emb, 3.0 * emb)) == pytest.approx(
        0.0, abs=1e-6
    )
    assert float(cosine_consistency(emb, -emb)) == pytest.approx(2.0)
    flat = cosine_consistency(emb.squeeze(1), emb.flip(0).squeeze(1))
    assert torch.equal(cosine_consistency(emb, emb.flip(0)), flat)


def test_on_real_ecapa_outputs():
    torch.manual_seed(2)
    model = ECAPA_TDNN(
        12,
        channels=[16, 16, 16, 16, 48],
        lin_neurons=8,
        attention_channels=8,
        se_channels=8,
    ).eval()
    feats = torch.randn(3, 40, 12)
    emb = model(feats)
    assert emb.shape == (3, 1, 8)
    assert float(cosine_consistency(emb, model(feats))) == pytest.approx(
        0.0, abs=1e-5
    )
    other = model(torch.randn(3, 40, 12))
    got = cosine_consistency(emb, other)
    expected = naive(emb.squeeze(1), other.squeeze(1))
    assert float(got) == pytest.approx(expected, abs=1e-5)


def test_gradient_pulls_pairs_together():
    torch.manual_seed(3)
    anchor = torch.randn(5, 8, requires_grad=True)
    parallel = torch.randn(5, 8, requires_grad=True)
    mask = torch.tensor([True, True, False, True, False])
    loss = cosine_consistency(anchor, parallel, mask)
    loss.backward()
    # masked-out pairs get no gradient at all
    assert torch.all(anchor.grad[~mask] == 0)
    assert torch.all(parallel.grad[~mask] == 0)
    with torch.no_grad():
        before = torch.cosine_similarity(anchor, parallel)
        step_a = anchor - 0.05 * anchor.grad
        step_p = parallel - 0.05 * parallel.grad
        after = torch.cosine_similarity(step_a, step_p)
    assert torch.all(after[mask] > before[mask])
    assert torch.allclose(after[~mask], before[~mask])
    # the gradient of -cos on the parallel view points towards the anchor
    # direction, projected off the parallel embedding
    toward = (anchor / anchor.norm(dim=1, keepdim=True)).detach()
    assert torch.all((-parallel.grad * toward).sum(dim=1)[mask] > 0)


def test_empty_mask_is_zero_with_graph():
    anchor = torch.randn(3, 4, requires_grad=True)
    loss = cosine_consistency(anchor, torch.randn(3, 4), torch.zeros(3) > 0)
    assert float(loss) == 0.0
    loss.backward()
    assert torch.all(anchor.grad == 0)


def test_bad_input():
    with pytest.raises(ValueError, match="must have the same shape"):
        cosine_consistency(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match=r"anchor_emb: expected \[batch"):
        cosine_consistency(torch.randn(3, 2, 4), torch.randn(3, 2, 4))
    with pytest.raises(ValueError, match="mask has 2 entries for 3 pairs"):
        cosine_consistency(
            torch.randn(3, 4), torch.randn(3, 4), torch.ones(2) > 0
        )
