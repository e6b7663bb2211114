"""Probabilistic LDA scoring through SpeechBrain's own PLDA.

The embeddings are length-normalised, optionally reduced by
:class:`~emotion_invariant.backend.projection.LDA`, and a simplified PLDA
(``speechbrain.processing.PLDA_LDA.PLDA``: speaker subspace of rank
``rank``, full residual covariance) is trained on speaker labels with
SpeechBrain's EM. Trials are scored with SpeechBrain's
``fast_PLDA_scoring``, not a re-implementation, so the scores are the
log-likelihood ratios an upstream PLDA recipe would give.
"""

import numpy as np
import torch
from speechbrain.processing.PLDA_LDA import (
    PLDA as SpeechBrainPLDA,
)
from speechbrain.processing.PLDA_LDA import (
    Ndx,
    StatObject_SB,
    fast_PLDA_scoring,
)

from emotion_invariant.backend.base import (
    Backend,
    BackendError,
    check_labels,
    unit,
)
from emotion_invariant.backend.projection import LDA

#: Rows of enrolment scored against test rows at once in ``score_pairs``.
PAIR_CHUNK = 512


def stat_object(x, models=None):
    """SpeechBrain's container for ``[N, D]`` vectors, one session each.

    Example
    -------
    >>> stat_object(np.zeros((2, 3)), ["a", "b"]).stat1.shape
    (2, 3)
    """
    n = len(x)
    # Zero-padded, so that SpeechBrain's sorted index keeps the row order.
    names = np.array([f"s{i:09d}" for i in range(n)], dtype="|O")
    models = names if models is None else np.array(models, dtype="|O")
    none = np.array([None] * n)
    return StatObject_SB(
        modelset=models,
        segset=names,
        start=none,
        stop=none,
        stat0=np.ones((n, 1)),
        stat1=np.asarray(x, dtype=np.float64),
    )


class PLDA(Backend):
    """SpeechBrain's PLDA, after optional LDA, fitted on speaker labels.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> centres = torch.randn(30, 1, 8, generator=g)
    >>> emb = (centres + 0.3 * torch.randn(30, 6, 8, generator=g))
    >>> speakers = [s for s in range(30) for _ in range(6)]
    >>> plda = PLDA.fit(emb.reshape(-1, 8), speakers, rank=4)
    >>> same = plda.score_pairs(emb[:, 0], emb[:, 1]).mean()
    >>> other = plda.score_pairs(emb[:, 0], emb.roll(1, 0)[:, 1]).mean()
    >>> bool(same > other)
    True
    """

    kind = "plda"

    @classmethod
    def fit(
        cls,
        embeddings,
        speakers,
        nuisances=None,
        rank=100,
        lda_dims=0,
        iters=10,
    ):
        """Fit (LDA to ``lda_dims`` first when it is not 0)."""
        x = unit(embeddings)
        check_labels(cls.kind, x, speakers, min_speakers=2, min_repeated=2)
        arrays = {}
        if lda_dims:
            lda = LDA.fit(x, speakers, dims=lda_dims)
            arrays = {f"lda_{k}": v for k, v in lda.arrays.items()}
        reduced = cls._reduce(arrays, x)
        dim = reduced.shape[1]
        if not 0 < rank <= dim:
            raise BackendError(
                f"{cls.kind}: rank {rank} must be between 1 and {dim} (the "
                "dimension PLDA is trained in)"
            )
        model = SpeechBrainPLDA(rank_f=rank, nb_iter=iters)
        model.plda(stat_object(reduced.numpy(), [str(s) for s in speakers]))
        arrays.update(
            plda_mean=model.mean, plda_F=model.F, plda_Sigma=model.Sigma
        )
        settings = {"rank": rank, "lda_dims": lda_dims, "iters": iters}
        return cls(arrays, {**settings, "dim": x.shape[1]})

    @staticmethod
    def _reduce(arrays, x):
        if "lda_map" not in arrays:
            return x
        mean = torch.as_tensor(arrays["lda_mean"], dtype=torch.float64)
        return (x - mean) @ torch.as_tensor(arrays["lda_map"])

    def project(self, x):
        """The vectors PLDA models (after LDA, when fitted with it)."""
        return self._reduce(self.arrays, x)

    def transform(self, embeddings):
        """The unit embeddings PLDA scores, reduced by LDA if fitted so."""
        x = unit(embeddings)
        if x.shape[1] != self.dim:
            raise BackendError(
                f"{self.kind}: fitted on {self.dim}-d embeddings, given "
                f"{x.shape[1]}-d ones (another model?)"
            )
        return self.project(x)

    def score_matrix(self, enrol, test):
        """PLDA log-likelihood ratios of every enrol row against every test
        row, ``[len(enrol), len(test)]``, by SpeechBrain's scoring."""
        e = stat_object(self.transform(enrol).numpy())
        t = stat_object(self.transform(test).numpy())
        ndx = Ndx(models=e.modelset, testsegs=t.segset)
        scores = fast_PLDA_scoring(
            e,
            t,
            ndx,
            self.arrays["plda_mean"],
            self.arrays["plda_F"],
            self.arrays["plda_Sigma"],
        )
        return torch.as_tensor(scores.scoremat, dtype=torch.float32)

    def score_pairs(self, enrol, test):
        """Each enrol row against the same test row (chunks of
        :data:`PAIR_CHUNK` rows scored as a block, then the diagonal)."""
        enrol = torch.as_tensor(np.asarray(enrol))
        test = torch.as_tensor(np.asarray(test))
        out = []
        for start in range(0, len(enrol), PAIR_CHUNK):
            rows = slice(start, start + PAIR_CHUNK)
            out.append(self.score_matrix(enrol[rows], test[rows]).diagonal())
        return torch.cat(out)
