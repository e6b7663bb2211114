"""Drop-in replacements for SpeechBrain's ``EER`` and ``minDCF``.

Same signatures and return values as ``speechbrain.utils.metric_stats.EER``
and ``minDCF`` (tensors in, a ``(value, threshold)`` pair of Python floats
out), computed by sort + cumsum (:mod:`emotion_invariant.scoring.metrics`)
instead of a Python loop over ~2N thresholds and an N x 2N matrix, so a
recipe can swap the import and nothing else.
"""

import torch

from emotion_invariant.scoring.metrics import eer, min_dcf


def _pooled(positive_scores, negative_scores):
    positive = torch.as_tensor(positive_scores).reshape(-1)
    negative = torch.as_tensor(negative_scores, device=positive.device)
    negative = negative.reshape(-1).to(positive.dtype)
    scores = torch.cat([positive, negative])
    labels = torch.zeros(len(scores), dtype=torch.bool, device=scores.device)
    labels[: len(positive)] = True
    return scores, labels


def EER(positive_scores, negative_scores):
    """Computes the EER (and its threshold), like SpeechBrain's ``EER``.

    Arguments
    ---------
    positive_scores : torch.Tensor
        The scores from entries of the same class.
    negative_scores : torch.Tensor
        The scores from entries of different classes.

    Returns
    -------
    EER : float
        The EER score.
    threshold : float
        The corresponding threshold for the EER score.

    Example
    -------
    >>> positive_scores = torch.tensor([0.6, 0.7, 0.8, 0.5])
    >>> negative_scores = torch.tensor([0.4, 0.3, 0.2, 0.1])
    >>> val_eer, threshold = EER(positive_scores, negative_scores)
    >>> val_eer
    0.0
    """
    return eer(*_pooled(positive_scores, negative_scores))


def minDCF(
    positive_scores, negative_scores, c_miss=1.0, c_fa=1.0, p_target=0.01
):
    """Computes the minDCF metric, like SpeechBrain's ``minDCF``.

    ``C_det = c_miss * p_miss * p_target + c_fa * p_fa * (1 - p_target)``,
    minimised over thresholds; not normalised, as in SpeechBrain.

    Arguments
    ---------
    positive_scores : torch.Tensor
        The scores from entries of the same class.
    negative_scores : torch.Tensor
        The scores from entries of different classes.
    c_miss : float
        Cost assigned to a missing error (default 1.0).
    c_fa : float
        Cost assigned to a false alarm (default 1.0).
    p_target : float
        Prior probability of having a target (default 0.01).

    Returns
    -------
    minDCF : float
        The minDCF score.
    threshold : float
        The corresponding threshold for the minDCF score.

    Example
    -------
    >>> positive_scores = torch.tensor([0.6, 0.7, 0.8, 0.5])
    >>> negative_scores = torch.tensor([0.4, 0.3, 0.2, 0.1])
    >>> val_minDCF, threshold = minDCF(positive_scores, negative_scores)
    >>> val_minDCF
    0.0
    """
    scores, labels = _pooled(positive_scores, negative_scores)
    return min_dcf(scores, labels, p_target=p_target, c_miss=c_miss, c_fa=c_fa)
