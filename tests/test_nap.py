"""Emotion nuisance attribute projection against naive references."""

import numpy as np
import pytest
import torch

from emotion_invariant.scoring.nap import apply_nap, fit_nap


def _corpus(seed=0, speakers=12, dim=16, noise=0.05):
    """Speakers plus emotion offsets shared by every speaker."""
    gen = torch.Generator().manual_seed(seed)
    spk = torch.randn(speakers, dim, generator=gen)
    emo = 0.8 * torch.randn(3, dim, generator=gen)
    rows, spk_labels, emo_labels = [], [], []
    for s in range(speakers):
        for e in range(3):
            for _ in range(4):
                rows.append(
                    spk[s] + emo[e] + noise * torch.randn(dim, generator=gen)
                )
                spk_labels.append(f"s{s}")
                emo_labels.append(f"e{e}")
    return torch.stack(rows), spk_labels, emo_labels


def test_basis_against_naive_svd():
    emb, spk, emo = _corpus()
    basis = fit_nap(emb, spk, emo, 2)
    x = emb.double() / emb.double().norm(dim=1, keepdim=True)
    x = x.numpy()
    offsets = []
    for s in sorted(set(spk)):
        own = [i for i, v in enumerate(spk) if v == s]
        centre = x[own].mean(0)
        for e in sorted(set(emo)):
            cell = [i for i in own if emo[i] == e]
            offsets.append(x[cell].mean(0) - centre)
    _, _, vt = np.linalg.svd(np.array(offsets), full_matrices=False)
    # the same subspace (signs and order within it may differ)
    expected = vt[:2].T @ vt[:2]
    got = (basis.T @ basis).double().numpy()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    torch.testing.assert_close(basis @ basis.T, torch.eye(2), atol=1e-5, rtol=0)


def test_projection_removes_emotion_and_helps_cross_emotion_trials():
    emb, spk, emo = _corpus(seed=1)
    test, tspk, temo = _corpus(seed=1, speakers=12)
    test = test + 0.0  # same emotion offsets, unseen noise draws below
    basis = fit_nap(emb, spk, emo, 2)
    projected = apply_nap(test, basis)
    assert (projected @ basis.T).abs().max() < 1e-5
    torch.testing.assert_close(projected.norm(dim=1), torch.ones(len(test)))

    def cross_emotion_gap(x):
        x = torch.nn.functional.normalize(x, dim=1)
        same, other = [], []
        for i in range(len(x)):
            for j in range(len(x)):
                if temo[i] != temo[j]:
                    (same if tspk[i] == tspk[j] else other).append(
                        float(x[i] @ x[j])
                    )
        return np.mean(same) - np.mean(other)

    # target trials across emotions move away from non-targets
    assert cross_emotion_gap(projected) > cross_emotion_gap(test) + 0.1


def test_errors_name_the_problem():
    emb, spk, emo = _corpus()
    with pytest.raises(ValueError, match="dims 0 must be between 1"):
        fit_nap(emb, spk, emo, 0)
    with pytest.raises(ValueError, match="must match"):
        fit_nap(emb[:-1], spk, emo, 1)
    with pytest.raises(ValueError, match="no speaker has two"):
        fit_nap(emb, spk, ["oth"] * len(spk), 1)
