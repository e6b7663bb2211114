"""Speaker mean matching against a naive reference, and what it does to a
linear speaker probe when it trains a layer head."""

import numpy as np
import pytest
import torch

from emotion_invariant.emotion.layer_head import LayerHead
from emotion_invariant.emotion.probe import speaker_probe
from emotion_invariant.losses.speaker_means import between_speaker_share


def _naive_share(x, speakers):
    """Per dimension: between-speaker sum of squares over the total one."""
    x = np.asarray(x, dtype=np.float64)
    grand = x.mean(0)
    between = np.zeros(x.shape[1])
    for s in set(speakers):
        rows = x[np.asarray(speakers) == s]
        between += len(rows) * (rows.mean(0) - grand) ** 2
    total = ((x - grand) ** 2).sum(0)
    return float((between / total).mean())


def test_share_matches_a_naive_analysis_of_variance():
    gen = torch.Generator().manual_seed(0)
    speakers = torch.tensor([7, 7, 7, 2, 2, 9, 9, 9, 9, 9, 4, 4])
    x = torch.randn(12, 5, generator=gen, dtype=torch.float64)
    x[:, 1] += 3 * speakers.double()  # unequal groups, one loud dimension
    got = float(between_speaker_share(x, speakers))
    assert got == pytest.approx(_naive_share(x, speakers.tolist()), rel=1e-6)
    # equal speaker means: 0; one utterance value per speaker: 1
    centred = x.clone()
    for s in speakers.unique():
        centred[speakers == s] -= centred[speakers == s].mean(0)
    assert float(between_speaker_share(centred, speakers)) < 1e-12
    constant = speakers[:, None].double().expand(12, 3)
    assert float(between_speaker_share(constant, speakers)) == pytest.approx(1)
    assert torch.autograd.gradcheck(
        lambda v: between_speaker_share(v, speakers), (x.requires_grad_(),)
    )


def test_share_refuses_what_it_cannot_use():
    x = torch.randn(4, 2)
    with pytest.raises(ValueError, match="at least 2 speakers"):
        between_speaker_share(x, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="4 feature rows but 3"):
        between_speaker_share(x, torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match=">= 0"):
        between_speaker_share(x, torch.tensor([0, 1, -1, 1]))


def _train(weight, x, emo, spk, steps=300):
    torch.manual_seed(0)
    head = LayerHead({"a": x.shape[1]}, ["a"], 2, "linear", dim=8, dropout=0.0)
    head.pooling.set_standardisation(x)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(steps):
        loss = torch.nn.functional.cross_entropy(head(x), emo)
        if weight:
            loss = loss + weight * between_speaker_share(head.pool(x), spk)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = (head(x).argmax(-1) == emo).float().mean().item()
        pooled = head.pool(x)
    probe = speaker_probe(pooled, spk.tolist(), seed=0)["accuracy"]
    return accuracy, probe


def test_matching_the_means_blinds_a_linear_speaker_probe():
    """Speakers planted in 10 columns, the emotion in one: the term leaves
    the emotion and takes the speakers from the weighted features."""
    gen = torch.Generator().manual_seed(0)
    spk = torch.arange(6).repeat_interleave(40)
    emo = torch.randint(0, 2, (240,), generator=gen)
    x = torch.randn(240, 12, generator=gen)
    x[:, :10] += 3 * torch.randn(6, 10, generator=gen)[spk]
    x[:, 11] += 3 * emo
    accuracy, probe = _train(0.0, x, emo, spk)
    assert accuracy > 0.9 and probe > 0.9  # random projections keep them
    accuracy, probe = _train(10.0, x, emo, spk)
    assert accuracy > 0.9
    assert probe < 0.35  # chance: 1/6
