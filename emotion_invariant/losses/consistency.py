"""Cosine consistency between an utterance and its emotional parallel view.

ERL, the Emotion-invariant Representation Learning objective of Tian, Hu
and Xu (2025), is AAM-softmax plus a cosine-similarity penalty on parallel
pairs: the speaker embedding of an utterance and of a same-speaker view in
another emotion are pulled together by ``1 - cos``. This module is that
penalty; the recipes weigh it against the speaker classification loss with
``erl_weight`` (named after ERL).
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


def consistency_target(kind, anchors, pretrained=None, neutral=None):
    """What the consistency loss pulls each parallel view towards.

    Arguments
    ---------
    kind : str
        ``view``: the anchor as the model embeds it now (the paper);
        ``pretrained``: the anchor as the frozen pretrained model embeds
        it; ``neutral``: the pretrained model's mean neutral embedding of
        the anchor's speaker.
    anchors : torch.Tensor
        The anchors' embeddings ``[B, 1, D]``.
    pretrained : torch.Tensor, optional
        The pretrained model's embeddings of the anchors (``pretrained``).
    neutral : torch.Tensor, optional
        Each anchor's neutral target, ``[B, 1, D]`` (``neutral``).

    Returns
    -------
    torch.Tensor

    The kind and the embeddings it needs are checked once, when the run is
    set up (:func:`emotion_invariant.verification.model.setup_finetuning`).

    Example
    -------
    >>> a, p = torch.zeros(2, 1, 3), torch.ones(2, 1, 3)
    >>> consistency_target("pretrained", a, pretrained=p) is p
    True
    >>> consistency_target("view", a) is a
    True
    """
    return {"view": anchors, "pretrained": pretrained, "neutral": neutral}[kind]
