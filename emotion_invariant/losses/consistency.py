"""Cosine consistency between an utterance and its emotional parallel view.

The emotion-invariant representation learning (ERL) term of Tian, Hu and Xu
(2025): the speaker embedding of an utterance and of a same-speaker view in
another emotion are pulled together by ``1 - cos``, added to the speaker
classification loss.
"""

import torch
import torch.nn.functional as F


def _flatten(emb, name):
    if emb.dim() == 3 and emb.shape[1] == 1:
        emb = emb.squeeze(1)
    if emb.dim() != 2:
        raise ValueError(
            f"{name}: expected [batch, dim] or [batch, 1, dim], got shape "
            f"{tuple(emb.shape)}"
        )
    return emb


def cosine_consistency(anchor_emb, parallel_emb, mask=None):
    """Mean of ``1 - cos(anchor, parallel)`` over the selected pairs.

    Arguments
    ---------
    anchor_emb : torch.Tensor
        Embeddings ``[batch, dim]`` or ``[batch, 1, dim]`` (as SpeechBrain's
        ECAPA-TDNN returns them).
    parallel_emb : torch.Tensor
        Embeddings of the parallel views, same shape.
    mask : torch.Tensor, optional
        Boolean ``[batch]``: which pairs count (e.g. only pairs whose
        partner has another emotion). With no pair selected the loss is 0,
        still attached to the graph.

    Returns
    -------
    torch.Tensor
        Scalar in ``[0, 2]``.

    Example
    -------
    >>> a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> b = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    >>> cosine_consistency(a, b)
    tensor(0.5000)
    >>> cosine_consistency(a, b, mask=torch.tensor([True, False]))
    tensor(0.)
    """
    anchor_emb = _flatten(anchor_emb, "anchor_emb")
    parallel_emb = _flatten(parallel_emb, "parallel_emb")
    if anchor_emb.shape != parallel_emb.shape:
        raise ValueError(
            f"anchor_emb {tuple(anchor_emb.shape)} and parallel_emb "
            f"{tuple(parallel_emb.shape)} must have the same shape"
        )
    distance = 1.0 - F.cosine_similarity(anchor_emb, parallel_emb, dim=-1)
    if mask is None:
        return distance.mean()
    mask = mask.to(device=distance.device, dtype=torch.bool).reshape(-1)
    if mask.numel() != distance.numel():
        raise ValueError(
            f"mask has {mask.numel()} entries for {distance.numel()} pairs"
        )
    weights = mask.to(distance.dtype)
    return (distance * weights).sum() / weights.sum().clamp(min=1.0)


class EmotionConsistencyLoss(torch.nn.Module):
    """Weighted :func:`cosine_consistency`, the ERL term of the objective.

    The full speaker objective is AAM-softmax over every sample of the
    batch (anchors and parallel views, which share speaker labels) plus
    ``erl_weight`` times this term on the pairs; :func:`erl_objective`
    spells it out.

    Arguments
    ---------
    weight : float
        Multiplies the consistency (``erl_weight`` in the hparams); 0
        turns the term off.

    Example
    -------
    >>> loss = EmotionConsistencyLoss(weight=0.5)
    >>> a = torch.tensor([[[1.0, 0.0]]])
    >>> loss(a, torch.tensor([[[0.0, 1.0]]]))
    tensor(0.5000)
    """

    def __init__(self, weight=1.0):
        super().__init__()
        self.weight = weight

    def forward(self, anchor_emb, parallel_emb, mask=None):
        """Compute ``weight * cosine_consistency``.

        Arguments
        ---------
        anchor_emb : torch.Tensor
            ``[batch, dim]`` or ``[batch, 1, dim]``.
        parallel_emb : torch.Tensor
            Same shape.
        mask : torch.Tensor, optional
            Boolean ``[batch]``: which pairs count.

        Returns
        -------
        torch.Tensor
            Scalar.
        """
        return self.weight * cosine_consistency(anchor_emb, parallel_emb, mask)


def erl_objective(
    speaker_loss, anchor_emb, parallel_emb, mask=None, erl_weight=1.0
):
    """Speaker loss plus ``erl_weight`` times the cosine consistency.

    ``speaker_loss`` is the AAM-softmax loss on all samples, anchors and
    parallel views alike (the views keep the speaker, so they share its
    label).

    Arguments
    ---------
    speaker_loss : torch.Tensor
        Scalar classification loss over the whole batch.
    anchor_emb : torch.Tensor
        Anchor embeddings ``[batch, dim]`` or ``[batch, 1, dim]``.
    parallel_emb : torch.Tensor
        Parallel-view embeddings, same shape.
    mask : torch.Tensor, optional
        Boolean ``[batch]``: which pairs count in the consistency.
    erl_weight : float
        Weight of the consistency term.

    Returns
    -------
    torch.Tensor
        Scalar.

    Example
    -------
    >>> from speechbrain.nnet.losses import (
    ...     AdditiveAngularMargin, LogSoftmaxWrapper)
    >>> aam = LogSoftmaxWrapper(AdditiveAngularMargin(margin=0.2, scale=30))
    >>> anchor = torch.nn.functional.normalize(torch.randn(4, 1, 8), dim=-1)
    >>> parallel = torch.nn.functional.normalize(torch.randn(4, 1, 8), dim=-1)
    >>> weights = torch.nn.functional.normalize(torch.randn(3, 8), dim=-1)
    >>> emb = torch.cat([anchor, parallel])
    >>> cosines = emb.squeeze(1) @ weights.T  # classifier outputs
    >>> labels = torch.tensor([[0], [1], [2], [0]]).repeat(2, 1)
    >>> speaker_loss = aam(cosines.unsqueeze(1), labels)
    >>> total = erl_objective(speaker_loss, anchor, parallel, erl_weight=0.1)
    >>> bool(total >= speaker_loss)
    True
    """
    return speaker_loss + erl_weight * cosine_consistency(
        anchor_emb, parallel_emb, mask
    )
