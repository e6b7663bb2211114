"""What every scoring back-end shares: the fitted arrays, cosine scoring of
the transformed embeddings, and saving to one ``.npz`` file.

A back-end is fitted on embeddings of training speakers (speaker labels,
and for some members nuisance labels such as emotions) and applied to any
embedding afterwards, so the model itself is never retrained.
"""

import json

import numpy as np
import torch

from emotion_invariant.atomic import atomic_path

#: The file format's version, written into every saved back-end.
FORMAT = 1


class BackendError(ValueError):
    """A back-end cannot be fitted or loaded from what it was given."""


def unit(x):
    """Rows of ``x`` as float64 unit vectors (a tensor).

    Example
    -------
    >>> unit([[3.0, 4.0]])
    tensor([[0.6000, 0.8000]], dtype=torch.float64)
    """
    x = torch.as_tensor(np.asarray(x), dtype=torch.float64)
    if x.ndim != 2:
        raise BackendError(f"embeddings must be [N, D], not {list(x.shape)}")
    return torch.nn.functional.normalize(x, dim=-1)


def speaker_rows(speakers):
    """Row indices of each speaker, in order of first appearance.

    Example
    -------
    >>> speaker_rows(["b", "a", "b"])
    {'b': [0, 2], 'a': [1]}
    """
    rows = {}
    for i, spk in enumerate(speakers):
        rows.setdefault(spk, []).append(i)
    return rows


def check_labels(kind, x, speakers, min_speakers=1, min_repeated=1):
    """Refuse labels that do not match the embeddings or are too few.

    Arguments
    ---------
    kind : str
        The member, for the message.
    x : torch.Tensor
        ``[N, D]`` embeddings.
    speakers : list
        ``N`` speaker labels.
    min_speakers : int
        Speakers the member needs.
    min_repeated : int
        Speakers with two or more utterances the member needs.

    Returns
    -------
    dict
        :func:`speaker_rows` of ``speakers``.

    Example
    -------
    >>> check_labels("wccn", torch.zeros(3, 2), ["a", "a", "b"], 3)
    Traceback (most recent call last):
    ...
    emotion_invariant.backend.base.BackendError: wccn: 2 speaker(s) in \
the fitting data; it needs at least 3
    """
    if len(speakers) != len(x):
        raise BackendError(
            f"{kind}: {len(x)} embeddings but {len(speakers)} speaker labels"
        )
    rows = speaker_rows(speakers)
    if len(rows) < min_speakers:
        raise BackendError(
            f"{kind}: {len(rows)} speaker(s) in the fitting data; it needs "
            f"at least {min_speakers}"
        )
    repeated = sum(len(r) > 1 for r in rows.values())
    if repeated < min_repeated:
        raise BackendError(
            f"{kind}: {repeated} speaker(s) with two or more utterances in "
            f"the fitting data; it needs at least {min_repeated}"
        )
    return rows


def speaker_codes(rows, n):
    """``[n]`` int64: the index in ``rows`` of each row's speaker."""
    codes = torch.empty(n, dtype=torch.long)
    for k, r in enumerate(rows.values()):
        codes[r] = k
    return codes


def within_speaker_offsets(x, rows):
    """Each row of ``x`` minus its speaker's mean, and each row's weight
    ``1 / utterances of its speaker`` (speakers with one utterance are
    left out: their offset is zero).

    Example
    -------
    >>> x = torch.tensor([[1.0, 0.0], [3.0, 0.0], [5.0, 5.0]])
    >>> offsets, weights = within_speaker_offsets(x, {"a": [0, 1], "b": [2]})
    >>> offsets, weights
    (tensor([[-1.,  0.],
            [ 1.,  0.]]), tensor([0.5000, 0.5000]))
    """
    codes = speaker_codes(rows, len(x))
    counts = torch.bincount(codes, minlength=len(rows)).to(x.dtype)
    sums = torch.zeros(len(rows), x.shape[1], dtype=x.dtype)
    sums.index_add_(0, codes, x)
    offsets = x - (sums / counts[:, None])[codes]
    keep = counts[codes] > 1
    return offsets[keep], 1 / counts[codes][keep]


#: Every member class, by its ``kind``: filled as each subclass of
#: :class:`Backend` is defined (the package imports them all).
REGISTRY = {}


class Backend:
    """A fitted back-end: a map of the embeddings, then cosine scoring.

    Subclasses set :attr:`kind`, fill :attr:`arrays` when fitted and
    implement :meth:`project`, the map before length normalisation; a
    subclass with a ``kind`` is registered in :data:`REGISTRY`.

    Arguments
    ---------
    arrays : dict of str to numpy.ndarray
        The fitted parameters.
    settings : dict
        The member's settings (JSON-serialisable), saved with it.
    """

    kind = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.kind is not None:
            REGISTRY[cls.kind] = cls

    def __init__(self, arrays, settings=None):
        self.arrays = {k: np.asarray(v) for k, v in arrays.items()}
        self.settings = dict(settings or {})

    def project(self, x):
        """The map of ``[N, D]`` float64 unit rows, before normalisation."""
        raise NotImplementedError

    def transform(self, embeddings):
        """Length-normalised embeddings in the back-end's space.

        Arguments
        ---------
        embeddings : torch.Tensor or array-like
            ``[N, D]`` embeddings of the model the back-end was fitted on.

        Returns
        -------
        torch.Tensor
            ``[N, D']`` float32 unit rows.
        """
        x = unit(embeddings)
        if x.shape[1] != self.dim:
            raise BackendError(
                f"{self.kind}: fitted on {self.dim}-d embeddings, given "
                f"{x.shape[1]}-d ones (another model?)"
            )
        return torch.nn.functional.normalize(self.project(x), dim=-1).float()

    def score_pairs(self, enrol, test):
        """The score of each row of ``enrol`` against the same row of
        ``test`` (cosine in the back-end's space)."""
        return (self.transform(enrol) * self.transform(test)).sum(-1)

    @property
    def dim(self):
        """The embedding size the back-end was fitted on."""
        return int(self.settings["dim"])

    def save(self, path):
        """Write the back-end to ``path`` (``.npz``), atomically."""
        meta = {"kind": self.kind, "format": FORMAT, "settings": self.settings}
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **self.arrays)

    def __repr__(self):
        return f"{type(self).__name__}({self.settings})"
