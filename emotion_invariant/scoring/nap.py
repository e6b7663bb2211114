"""Emotion nuisance attribute projection (NAP) of speaker embeddings.

Nuisance attribute projection (Solomonoff, Campbell and Boardman, 2005)
removes from every embedding the few directions along which one speaker's
embeddings move with a nuisance, here emotion: the leading principal
directions of the (speaker, emotion) mean embeddings, each centred on its
speaker's mean, estimated on training speakers. Scoring then compares
embeddings in the complement of that subspace. It needs no training of the
network and is fitted in a fraction of a second, so it composes with any
model, zero-shot or fine-tuned.
"""

import numpy as np
import torch


def _unit(x):
    x = torch.as_tensor(x, dtype=torch.float64)
    return torch.nn.functional.normalize(x, dim=-1)


def fit_nap(embeddings, speakers, nuisances, dims):
    """The ``dims`` leading within-speaker nuisance directions.

    Arguments
    ---------
    embeddings : torch.Tensor or array-like
        ``[N, D]`` training embeddings (length-normalised here).
    speakers : list
        ``N`` speaker labels.
    nuisances : list
        ``N`` nuisance labels (emotions).
    dims : int
        Directions to return (at most the number of (speaker, nuisance)
        cells, and at most ``D``).

    Returns
    -------
    torch.Tensor
        ``[dims, D]`` orthonormal rows (float32).

    Example
    -------
    >>> emb = torch.tensor([[1.0, 0.1, 0.0], [1.0, -0.1, 0.0],
    ...                     [0.0, 0.1, 1.0], [0.0, -0.1, 1.0]])
    >>> basis = fit_nap(emb, ["a", "a", "b", "b"], ["neu", "ang"] * 2, 1)
    >>> basis.abs().round(decimals=2)
    tensor([[0., 1., 0.]])
    """
    x = _unit(embeddings)
    if not len(x) == len(speakers) == len(nuisances):
        raise ValueError(
            f"fit_nap: {len(x)} embeddings, {len(speakers)} speakers and "
            f"{len(nuisances)} nuisance labels must match"
        )
    cells = {}
    for i, key in enumerate(zip(speakers, nuisances)):
        cells.setdefault(key, []).append(i)
    by_speaker = {}
    for i, spk in enumerate(speakers):
        by_speaker.setdefault(spk, []).append(i)
    emotions = {}
    for spk, nuisance in cells:
        emotions.setdefault(spk, set()).add(nuisance)
    if not any(len(e) > 1 for e in emotions.values()):
        raise ValueError(
            "fit_nap: no speaker has two nuisance labels (emotions): there "
            "is no within-speaker nuisance to estimate"
        )
    centre = {s: x[rows].mean(0) for s, rows in by_speaker.items()}
    offsets = torch.stack(
        [x[rows].mean(0) - centre[s] for (s, _), rows in cells.items()]
    )
    if not 0 < dims <= min(offsets.shape):
        raise ValueError(
            f"fit_nap: dims {dims} must be between 1 and "
            f"{min(offsets.shape)} ({len(cells)} speaker-nuisance cells, "
            f"{x.shape[1]}-d embeddings)"
        )
    _, _, vt = torch.linalg.svd(offsets, full_matrices=False)
    return vt[:dims].float()


def apply_nap(embeddings, basis):
    """Length-normalised embeddings with the ``basis`` directions removed.

    Example
    -------
    >>> apply_nap(torch.tensor([[3.0, 4.0]]), torch.tensor([[0.0, 1.0]]))
    tensor([[1., 0.]])
    """
    x = _unit(embeddings)
    b = torch.as_tensor(basis, dtype=torch.float64)
    x = x - (x @ b.T) @ b
    return torch.nn.functional.normalize(x, dim=-1).float()


def save_nap(path, basis):
    """Write the basis to an ``.npz`` file (key ``basis``)."""
    from emotion_invariant.atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, basis=np.asarray(basis, dtype=np.float32))
