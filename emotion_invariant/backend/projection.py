"""Linear back-ends fitted on speaker labels (and, for emotion NAP, emotion
labels): nuisance attribute projection, within-speaker NAP, within-class
covariance normalisation (WCCN) and linear discriminant analysis (LDA).

- Emotion NAP (Solomonoff et al., 2005) removes the leading directions of
  the (speaker, emotion) means about each speaker's mean.
- Within-speaker NAP needs no emotion label: each utterance is its own
  nuisance, so it removes the leading directions of within-speaker
  scatter, whatever made a speaker's utterances differ (emotion first,
  on emotional speech).
- WCCN (Hatch et al., 2006) whitens the within-speaker covariance, so
  every within-speaker direction weighs the same in the cosine.
- LDA keeps the directions of most between- to within-speaker variance.
"""

import torch

from emotion_invariant.backend.base import (
    Backend,
    BackendError,
    check_labels,
    unit,
    within_speaker_offsets,
)
from emotion_invariant.scoring.nap import fit_nap


def _remove(x, basis):
    b = torch.as_tensor(basis, dtype=torch.float64)
    return x - (x @ b.T) @ b


def _check_dims(kind, dims, most, what):
    if not 0 < dims <= most:
        raise BackendError(
            f"{kind}: dims {dims} must be between 1 and {most} ({what})"
        )


class EmotionNAP(Backend):
    """Nuisance attribute projection of the emotion directions.

    Example
    -------
    >>> emb = torch.tensor([[1.0, 0.2, 0.0], [1.0, -0.2, 0.0],
    ...                     [0.0, 0.2, 1.0], [0.0, -0.2, 1.0]])
    >>> nap = EmotionNAP.fit(emb, list("aabb"), ["neu", "ang"] * 2, dims=1)
    >>> nap.transform(emb)[:, 1].abs().max() < 1e-6
    tensor(True)
    """

    kind = "emotion_nap"

    @classmethod
    def fit(cls, embeddings, speakers, nuisances=None, dims=5):
        """Fit on emotion labels (``nuisances``)."""
        if nuisances is None:
            raise BackendError(
                f"{cls.kind}: needs emotion labels; without them use "
                "within_speaker_nap"
            )
        x = unit(embeddings)
        check_labels(cls.kind, x, speakers, min_speakers=1)
        try:
            basis = fit_nap(x, speakers, nuisances, dims)
        except ValueError as err:
            raise BackendError(f"{cls.kind}: {err}") from None
        return cls({"basis": basis.numpy()}, {"dims": dims, "dim": x.shape[1]})

    def project(self, x):
        """Remove the emotion directions."""
        return _remove(x, self.arrays["basis"])


class WithinSpeakerNAP(Backend):
    """NAP of the leading within-speaker directions, from speaker labels.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> spk = torch.randn(20, 8, generator=g)
    >>> # every speaker's utterances move along one planted direction
    >>> move = torch.randn(20, 6, 1, generator=g) * torch.eye(8)[3]
    >>> emb = (spk[:, None] * 0.2 + move).reshape(-1, 8)
    >>> nap = WithinSpeakerNAP.fit(emb, [s for s in range(20) for _ in
    ...                                  range(6)], dims=1)
    >>> int(abs(nap.arrays["basis"]).argmax())
    3
    """

    kind = "within_speaker_nap"

    @classmethod
    def fit(cls, embeddings, speakers, nuisances=None, dims=5):
        """Fit on speaker labels only (``nuisances`` are not used)."""
        x = unit(embeddings)
        rows = check_labels(cls.kind, x, speakers, min_speakers=1)
        offsets, _ = within_speaker_offsets(x, rows)
        _check_dims(
            cls.kind,
            dims,
            min(offsets.shape[0] - len(rows), x.shape[1]),
            f"{offsets.shape[0]} utterances of {len(rows)} speakers with "
            f"two or more, {x.shape[1]}-d embeddings",
        )
        # The leading right singular vectors of the offsets, from their
        # D x D scatter (cheaper than an SVD of N x D).
        _, vectors = torch.linalg.eigh(offsets.T @ offsets)
        return cls(
            {"basis": vectors.flip(-1)[:, :dims].T.float().numpy()},
            {"dims": dims, "dim": x.shape[1]},
        )

    def project(self, x):
        """Remove the within-speaker directions."""
        return _remove(x, self.arrays["basis"])


def within_class_covariance(x, rows):
    """The mean over speakers of each speaker's covariance (biased), as
    SpeechBrain's LDA and WCCN recipes compute it.

    Example
    -------
    >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [5.0, 1.0], [5.0, -1.0]])
    >>> within_class_covariance(x, {"a": [0, 1], "b": [2, 3]})
    tensor([[0.5000, 0.0000],
            [0.0000, 0.5000]])
    """
    offsets, weights = within_speaker_offsets(x, rows)
    speakers = sum(len(r) > 1 for r in rows.values())
    return (offsets * weights[:, None]).T @ offsets / speakers


def regularised_within(kind, x, rows, shrinkage):
    """:func:`within_class_covariance`, shrunk towards a multiple of the
    identity by ``shrinkage`` in [0, 1] (Ledoit-Wolf style): with 0 it
    must be estimable, so a too small fitting set is refused.

    Example
    -------
    >>> x = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [5.0, 1.0], [5.0, 1.0]])
    >>> regularised_within("wccn", x, {"a": [0, 1], "b": [2, 3]}, 0.5)
    tensor([[0.3750, 0.0000],
            [0.0000, 0.1250]])
    """
    if not 0 <= shrinkage <= 1:
        raise BackendError(f"{kind}: shrinkage {shrinkage} is not in [0, 1]")
    needed = x.shape[1] + len(rows)
    if shrinkage == 0 and len(x) < needed:
        raise BackendError(
            f"{kind}: {len(x)} utterances of {len(rows)} speakers cannot "
            f"estimate a {x.shape[1]}-d within-speaker covariance; it needs "
            f"at least {needed} (dimension + speakers), or shrinkage > 0"
        )
    w = within_class_covariance(x, rows)
    scale = torch.trace(w) / w.shape[0]
    eye = torch.eye(w.shape[0], dtype=w.dtype)
    return (1 - shrinkage) * w + shrinkage * scale * eye


class WCCN(Backend):
    """Within-class covariance normalisation: the within-speaker covariance
    mapped to the identity.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> emb = torch.randn(200, 4, generator=g) * torch.tensor([1, 1, 1, 9])
    >>> speakers = [i % 10 for i in range(200)]
    >>> wccn = WCCN.fit(emb, speakers)
    >>> x = wccn.project(unit(emb))
    >>> rows = {s: [i for i in range(200) if i % 10 == s] for s in range(10)}
    >>> torch.allclose(within_class_covariance(x, rows), torch.eye(4,
    ...                dtype=torch.float64), atol=1e-8)
    True
    """

    kind = "wccn"

    @classmethod
    def fit(cls, embeddings, speakers, nuisances=None, shrinkage=0.0):
        """Fit on speaker labels only."""
        x = unit(embeddings)
        rows = check_labels(cls.kind, x, speakers, min_speakers=2)
        w = regularised_within(cls.kind, x, rows, shrinkage)
        # W^-1 = B B^T, so B^T W B = I.
        chol = torch.linalg.cholesky(torch.linalg.inv(w))
        return cls(
            {"mean": x.mean(0).numpy(), "map": chol.numpy()},
            {"shrinkage": shrinkage, "dim": x.shape[1]},
        )

    def project(self, x):
        """Centre, then whiten the within-speaker covariance."""
        mean = torch.as_tensor(self.arrays["mean"], dtype=torch.float64)
        return (x - mean) @ torch.as_tensor(self.arrays["map"])


def lda_directions(x, rows, dims, sw=None):
    """The ``dims`` leading discriminant directions ``[D, dims]``: the
    generalised eigenvectors of ``Sb v = l Sw v``, largest ``l`` first.

    ``Sb`` is the scatter of the speaker means about the global mean and
    ``Sw`` :func:`within_class_covariance`, as in SpeechBrain's
    ``StatObject_SB.get_lda_matrix_stat1``. That function passes the
    non-symmetric ``Sw^-1 Sb`` to ``eigh``, which reads one triangle only,
    so its directions are discriminant only when ``Sw`` is a multiple of
    the identity; here the problem is made symmetric by ``Sw``'s Cholesky
    factor first. ``sw`` replaces ``Sw`` (a regularised one, say).
    """
    means = torch.stack([x[r].mean(0) for r in rows.values()])
    centred = means - x.mean(0)
    sb = centred.T @ centred
    if sw is None:
        sw = within_class_covariance(x, rows)
    lower = torch.linalg.cholesky(sw)
    inv = torch.linalg.inv(lower)
    _, vectors = torch.linalg.eigh(inv @ sb @ inv.T)
    directions = inv.T @ vectors.flip(-1)[:, :dims]
    return directions / directions.norm(dim=0)


class LDA(Backend):
    """Linear discriminant analysis to ``dims`` dimensions.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> centres = torch.randn(12, 1, 1, generator=g) * torch.eye(6)[2]
    >>> emb = (centres + 0.1 * torch.randn(12, 10, 6, generator=g)
    ...        + torch.tensor([0, 0, 0, 0, 0, 3.0])).reshape(-1, 6)
    >>> lda = LDA.fit(emb, [s for s in range(12) for _ in range(10)], dims=1)
    >>> int(abs(lda.arrays["map"]).argmax())
    2
    """

    kind = "lda"

    @classmethod
    def fit(cls, embeddings, speakers, nuisances=None, dims=150, shrinkage=0.0):
        """Fit on speaker labels only."""
        x = unit(embeddings)
        rows = check_labels(cls.kind, x, speakers, min_speakers=2)
        _check_dims(
            cls.kind,
            dims,
            min(len(rows) - 1, x.shape[1]),
            f"LDA keeps at most speakers - 1 = {len(rows) - 1} directions",
        )
        sw = regularised_within(cls.kind, x, rows, shrinkage)
        return cls(
            {
                "mean": x.mean(0).numpy(),
                "map": lda_directions(x, rows, dims, sw).numpy(),
            },
            {"dims": dims, "shrinkage": shrinkage, "dim": x.shape[1]},
        )

    def project(self, x):
        """Centre, then keep the discriminant directions."""
        mean = torch.as_tensor(self.arrays["mean"], dtype=torch.float64)
        return (x - mean) @ torch.as_tensor(self.arrays["map"])


__all__ = [
    "EmotionNAP",
    "LDA",
    "WCCN",
    "WithinSpeakerNAP",
    "lda_directions",
    "within_class_covariance",
]
