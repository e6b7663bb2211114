"""The consistency objective of emotion-invariant speaker verification on
a learnt low-rank projection of frozen embeddings.

Instead of fine-tuning the network so that an utterance and a
same-speaker, other-emotion view embed alike (``1 - cos``, the paper's
consistency loss), a rank-``r`` subspace ``Q`` is learnt so that the
projected unit embeddings ``x - Q Q^T x`` of such pairs agree: a learnt
NAP. Only ``r x D`` numbers are trained, so it does not over-fit a few
training speakers the way fine-tuning the network does, and it transfers
as a file. Pairs are two utterances of one speaker in different emotions
when emotion labels are given, otherwise any two utterances of a speaker.
"""

import numpy as np
import torch

from emotion_invariant.backend.base import (
    Backend,
    BackendError,
    check_labels,
    unit,
)
from emotion_invariant.losses.consistency import cosine_consistency
from emotion_invariant.scoring.threads import one_cpu_thread


def _orthonormal(directions):
    return torch.linalg.qr(directions)[0]


def _remove(x, q):
    return x - (x @ q) @ q.T


def pair_partners(speakers, nuisances=None):
    """For each utterance, the rows it may be paired with: its speaker's
    other utterances (in another emotion when ``nuisances`` are given).

    Example
    -------
    >>> pair_partners(["a", "a", "a", "b"], ["neu", "ang", "neu", "neu"])
    [array([1]), array([0, 2]), array([1]), array([], dtype=int64)]
    """
    speakers = np.asarray(speakers)
    index = np.arange(len(speakers))
    same = speakers[:, None] == speakers[None]
    other = index[:, None] != index[None]
    if nuisances is not None:
        nuisances = np.asarray(nuisances)
        other &= nuisances[:, None] != nuisances[None]
    return [np.flatnonzero(row) for row in same & other]


class ConsistencyProjection(Backend):
    """A rank-``dims`` projection trained with the consistency loss.

    Example
    -------
    >>> g = torch.Generator().manual_seed(0)
    >>> spk = torch.randn(10, 1, 6, generator=g)
    >>> emo = torch.randn(1, 4, 1, generator=g) * torch.eye(6)[4]
    >>> emb = (spk + emo).reshape(-1, 6)
    >>> speakers = [s for s in range(10) for _ in range(4)]
    >>> proj = ConsistencyProjection.fit(emb, speakers, dims=1, steps=200)
    >>> q = proj.arrays["basis"]
    >>> int(abs(q).argmax())
    4
    """

    kind = "consistency"

    @classmethod
    def fit(
        cls,
        embeddings,
        speakers,
        nuisances=None,
        dims=5,
        steps=1000,
        lr=0.03,
        batch_size=64,
        seed=1,
    ):
        """Learn the subspace from same-speaker pairs."""
        x = unit(embeddings)
        check_labels(cls.kind, x, speakers, min_speakers=1)
        if not 0 < dims < x.shape[1]:
            raise BackendError(
                f"{cls.kind}: dims {dims} must be between 1 and "
                f"{x.shape[1] - 1}"
            )
        partners = pair_partners(speakers, nuisances)
        anchors = np.flatnonzero([len(p) > 0 for p in partners])
        if len(anchors) == 0:
            what = "in two emotions" if nuisances is not None else "twice"
            raise BackendError(
                f"{cls.kind}: no speaker is heard {what}: there is no "
                "same-speaker pair to train on"
            )
        # Partners as one flat array: row i's are flat[start[i]:][:count[i]].
        counts = np.array([len(p) for p in partners])
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        flat = np.concatenate(partners)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        directions = torch.randn(
            x.shape[1], dims, generator=gen, dtype=torch.float64
        )
        directions.requires_grad_(True)
        optimiser = torch.optim.Adam([directions], lr=lr)
        size = min(batch_size, len(anchors))
        # Steps of a few small matrices: one thread, or a busy machine
        # spends more on waking threads than on the work.
        with one_cpu_thread():
            for _ in range(steps):
                batch = rng.choice(anchors, size, replace=False)
                pick = (rng.random(size) * counts[batch]).astype(int)
                views = flat[starts[batch] + pick]
                q = _orthonormal(directions)
                loss = cosine_consistency(
                    _remove(x[batch], q), _remove(x[views], q)
                )
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
        basis = _orthonormal(directions.detach()).T
        settings = {
            "dims": dims,
            "steps": steps,
            "lr": lr,
            "batch_size": batch_size,
            "seed": seed,
            "pairs": "emotion" if nuisances is not None else "speaker",
        }
        return cls(
            {"basis": basis.float().numpy()}, {**settings, "dim": x.shape[1]}
        )

    def project(self, x):
        """Remove the learnt subspace."""
        return _remove(x, torch.as_tensor(self.arrays["basis"]).double().T)
