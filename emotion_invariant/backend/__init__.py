"""Emotion-robust scoring back-ends, fitted on embeddings and saved beside
the model.

One interface for every member::

    backend = fit("within_speaker_nap", embeddings, speakers, dims=5)
    scores = backend.score_pairs(enrol, test)
    backend.save("backend.npz")
    backend = load_backend("backend.npz")

Members and what each needs to be fitted:

============================  =============================================
``emotion_nap``               speaker and emotion labels
``within_speaker_nap``        speaker labels
``wccn``                      speaker labels
``lda``                       speaker labels
``plda``                      speaker labels (SpeechBrain's PLDA)
``consistency``               speaker labels (emotion labels optional)
``chain``                     what its members need (e.g. NAP, then WCCN)
============================  =============================================
"""

import json

import numpy as np

from emotion_invariant.backend.base import Backend, BackendError
from emotion_invariant.backend.chain import Chain
from emotion_invariant.backend.consistency import ConsistencyProjection
from emotion_invariant.backend.plda import PLDA
from emotion_invariant.backend.projection import (
    LDA,
    WCCN,
    EmotionNAP,
    WithinSpeakerNAP,
)

#: Every member, by the name the recipes and command lines use.
KINDS = {
    cls.kind: cls
    for cls in (
        EmotionNAP,
        WithinSpeakerNAP,
        WCCN,
        LDA,
        PLDA,
        ConsistencyProjection,
        Chain,
    )
}


def fit(kind, embeddings, speakers, nuisances=None, **settings):
    """Fit the back-end ``kind`` on labelled embeddings.

    Arguments
    ---------
    kind : str
        A key of :data:`KINDS`.
    embeddings : torch.Tensor or array-like
        ``[N, D]`` embeddings of training speakers.
    speakers : list
        ``N`` speaker labels.
    nuisances : list, optional
        ``N`` emotion labels, for the members that use them.
    **settings
        The member's settings (``dims``, ``rank``, ...).

    Returns
    -------
    Backend

    Example
    -------
    >>> import torch
    >>> emb = torch.eye(4).repeat(3, 1) + 0.1 * torch.randn(12, 4)
    >>> fit("within_speaker_nap", emb, [0, 1, 2, 3] * 3, dims=2).kind
    'within_speaker_nap'
    >>> fit("pca", emb, [0] * 12)
    Traceback (most recent call last):
    ...
    emotion_invariant.backend.base.BackendError: unknown back-end 'pca'; \
one of: emotion_nap, within_speaker_nap, wccn, lda, plda, consistency, \
chain
    """
    if kind not in KINDS:
        raise BackendError(
            f"unknown back-end {kind!r}; one of: {', '.join(KINDS)}"
        )
    return KINDS[kind].fit(embeddings, list(speakers), nuisances, **settings)


def load_backend(path):
    """The back-end saved at ``path`` by :meth:`Backend.save`.

    Example
    -------
    >>> import os, tempfile, torch
    >>> emb = torch.eye(4).repeat(3, 1) + 0.1 * torch.randn(12, 4)
    >>> lda = fit("lda", emb, [0, 1, 2, 3] * 3, dims=2)
    >>> path = os.path.join(tempfile.mkdtemp(), "backend.npz")
    >>> lda.save(path)
    >>> again = load_backend(path)
    >>> bool((again.transform(emb) == lda.transform(emb)).all())
    True
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            arrays = {k: data[k] for k in data.files if k != "meta"}
    except (OSError, ValueError, KeyError) as err:
        raise BackendError(
            f"{path}: not a saved back-end ({type(err).__name__}: {err})"
        ) from None
    kind = meta.get("kind")
    if kind not in KINDS:
        raise BackendError(f"{path}: unknown back-end kind {kind!r}")
    return KINDS[kind](arrays, meta.get("settings"))


__all__ = ["KINDS", "Backend", "BackendError", "fit", "load_backend"]
