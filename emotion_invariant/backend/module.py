"""A fitted back-end inside the speaker model, so that SpeechBrain's own
inference applies it.

:class:`EmbeddingWithBackend` wraps the encoder of a model folder: it
returns the encoder's embedding mapped by the back-end, with the back-end's
arrays held as buffers, so they are saved in ``embedding_model.ckpt`` and
loaded by SpeechBrain's ``Pretrainer`` with the encoder.
``SpeakerRecognition.from_hparams`` on such a folder then embeds in the
back-end's space and ``verify_batch`` scores the cosine there, which is
how :meth:`~emotion_invariant.backend.base.Backend.score_pairs` scores.

Every member that maps embeddings (the projections, WCCN, LDA) is an
affine map of the unit embeddings followed by length normalisation, so one
module holds them all. PLDA scores pairs itself, which no embedding can
carry: it stays a scoring-time back-end.
"""

import torch

from emotion_invariant.backend.base import Backend, BackendError


def require_map(cls):
    """Fail unless the back-end class ``cls`` scores by the cosine of
    mapped embeddings, so that a model folder can apply it.

    Example
    -------
    >>> from emotion_invariant.backend import KINDS
    >>> require_map(KINDS["lda"])
    >>> require_map(KINDS["plda"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.backend.base.BackendError: plda: scores trials \
itself... it is a scoring-time back-end: ...
    """
    if (
        cls.transform is not Backend.transform
        or cls.score_pairs is not Backend.score_pairs
    ):
        raise BackendError(
            f"{cls.kind}: scores trials itself instead of by the cosine of "
            "mapped embeddings, so no model folder can apply it; it is a "
            "scoring-time back-end: fit it on embeddings (fit --embeddings "
            "E.npz ... --out BACKEND.npz) and score trials with it"
        )


def affine_form(backend):
    """The back-end's map of unit embeddings as ``x @ projection + offset``.

    Arguments
    ---------
    backend : Backend
        A fitted back-end that scores by cosine after its map.

    Returns
    -------
    projection : torch.Tensor
        float64 ``[D, D']``.
    offset : torch.Tensor
        float64 ``[D']``.

    Raises
    ------
    BackendError
        For a back-end that scores pairs itself (PLDA) or whose map is not
        affine.

    Example
    -------
    >>> from emotion_invariant.backend import fit
    >>> emb = torch.eye(4).repeat(3, 1) + 0.1 * torch.randn(12, 4)
    >>> lda = fit("lda", emb, [0, 1, 2, 3] * 3, dims=2)
    >>> projection, offset = affine_form(lda)
    >>> projection.shape, offset.shape
    (torch.Size([4, 2]), torch.Size([2]))
    """
    require_map(type(backend))
    dim = backend.dim
    offset = backend.project(torch.zeros(1, dim, dtype=torch.float64))[0]
    projection = backend.project(torch.eye(dim, dtype=torch.float64)) - offset
    # A member whose map is not affine would be silently changed by the
    # module: checked on random unit rows.
    gen = torch.Generator().manual_seed(0)
    probe = torch.randn(8, dim, generator=gen, dtype=torch.float64)
    probe = torch.nn.functional.normalize(probe, dim=-1)
    expected = backend.project(probe)
    scale = float(expected.abs().max()) + 1.0
    if not torch.allclose(
        probe @ projection + offset, expected, rtol=0, atol=1e-9 * scale
    ):
        raise BackendError(
            f"{backend.kind}: its map of the embeddings is not affine, so it "
            "cannot be built into a model folder"
        )
    return projection, offset


class EmbeddingWithBackend(torch.nn.Module):
    """An embedding model whose embeddings are mapped by a back-end.

    ``forward`` returns what :meth:`Backend.transform` gives for the
    encoder's embeddings: unit-normalised, mapped, unit-normalised. The
    map is computed in float64, as the back-end was fitted: WCCN's
    whitening multiplies float32 rounding by its condition number.

    Arguments
    ---------
    encoder : torch.nn.Module
        ``encoder(x, lengths)`` gives ``[B, 1, D]`` (SpeechBrain's
        ``ECAPA_TDNN``).
    input_size : int
        ``D``, the encoder's embedding size.
    output_size : int
        ``D'``, the back-end's.
    kind : str, optional
        The back-end's name, shown in the module's representation.

    Example
    -------
    >>> from emotion_invariant.backend import fit
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> encoder = ECAPA_TDNN(8, channels=[8, 8, 8, 8, 24], lin_neurons=4,
    ...                      attention_channels=4, se_channels=4,
    ...                      res2net_scale=2).eval()
    >>> feats = torch.randn(12, 50, 8)
    >>> with torch.no_grad():
    ...     emb = encoder(feats).squeeze(1)
    >>> lda = fit("lda", emb, [0, 1, 2, 3] * 3, dims=2)
    >>> model = EmbeddingWithBackend(encoder, 4, 2, "lda").eval()
    >>> model.set_backend(lda)
    >>> with torch.no_grad():
    ...     out = model(feats)
    >>> out.shape
    torch.Size([12, 1, 2])
    >>> torch.allclose(out.squeeze(1), lda.transform(emb), atol=1e-6)
    True
    """

    def __init__(self, encoder, input_size, output_size, kind=None):
        super().__init__()
        self.encoder = encoder
        self.kind = kind
        self.register_buffer(
            "projection",
            torch.eye(input_size, output_size, dtype=torch.float64),
        )
        self.register_buffer(
            "offset", torch.zeros(output_size, dtype=torch.float64)
        )

    def set_backend(self, backend):
        """Hold the map of ``backend`` (see :func:`affine_form`)."""
        projection, offset = affine_form(backend)
        if projection.shape != self.projection.shape:
            raise BackendError(
                f"{backend.kind}: maps {projection.shape[0]}-d embeddings to "
                f"{projection.shape[1]}-d ones; this module was built for "
                f"{self.projection.shape[0]} -> {self.projection.shape[1]}"
            )
        self.projection.copy_(projection)
        self.offset.copy_(offset)

    def map(self, embeddings):
        """``[..., D]`` embeddings in the back-end's space, ``[..., D']``,
        of the input's dtype."""
        x = embeddings.to(self.projection.dtype)
        x = torch.nn.functional.normalize(x, dim=-1)
        y = x @ self.projection + self.offset
        return torch.nn.functional.normalize(y, dim=-1).to(embeddings.dtype)

    def forward(self, x, lengths=None):
        """The encoder's embeddings of ``x``, mapped: ``[B, 1, D']``."""
        return self.map(self.encoder(x, lengths))

    def extra_repr(self):
        return f"kind={self.kind!r}"


class NoClassifier(torch.nn.Module):
    """Stands for the speaker classifier in a model folder with a back-end.

    The speaker head scores the encoder's own embeddings, which the
    back-end replaces, so it is left out of the folder. This module keeps
    ``EncoderClassifier.from_hparams`` able to load the folder (it needs a
    ``classifier``) and refuses to classify.

    Arguments
    ---------
    kind : str
        The back-end's name, for the message.

    Example
    -------
    >>> NoClassifier("lda")(torch.zeros(1, 1, 2))
    Traceback (most recent call last):
    ...
    RuntimeError: this model's embeddings are mapped by the lda back-end, \
which its speaker classifier was not trained on, so the folder has none: \
classify speakers with the model folder the back-end was fitted on
    """

    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, embeddings):
        """Refuse: there is no classifier."""
        raise RuntimeError(
            f"this model's embeddings are mapped by the {self.kind} back-end, "
            "which its speaker classifier was not trained on, so the folder "
            "has none: classify speakers with the model folder the back-end "
            "was fitted on"
        )


__all__ = ["EmbeddingWithBackend", "NoClassifier", "affine_form", "require_map"]
