"""Supervised contrastive loss with an additive angular margin.

Implements "Speaker Representation Learning via Contrastive Loss with
Maximal Speaker Separability" (Li & Mak, APSIPA 2022): the supervised
contrastive loss of Khosla et al. (NeurIPS 2020) over a multi-view batch,
with the ArcFace margin ``cos(theta + m)`` on every positive pair.
"""

import torch
import torch.nn.functional as F
from speechbrain.nnet.losses import AdditiveAngularMargin


class SupConLoss(torch.nn.Module):
    """Supervised contrastive loss with an angular margin on positives.

    For anchor ``i`` with positives ``P(i)`` (other rows with its label,
    itself excluded) and contrast set ``A(i)`` (every row but itself)::

        loss_i = -(T / T_base) / |P(i)| * sum_{p in P(i)} log(
            exp(s_ip / T) / sum_{a in A(i)} exp(s_ia / T)
        )

    with ``T`` the temperature, ``T_base`` the base temperature and
    ``s_ia = cos(theta_ia + margin)`` if ``a`` is a positive of ``i``,
    ``cos(theta_ia)`` otherwise: the margin lowers each positive's logit
    wherever it appears, in the numerator and in the denominator. Features
    are L2-normalised here, the log-softmax is a log-sum-exp, and the loss
    is the mean of ``loss_i`` over anchors that have at least one positive
    (an anchor alone with its label carries no signal and would give 0/0).
    With no such anchor the loss is a zero still attached to the graph.

    The margined cosine is SpeechBrain's ``AdditiveAngularMargin``: the
    cosine is clamped into ``[-1 + 1e-7, 1 - 1e-7]`` so that the sine and
    every gradient stay finite, and where ``theta + margin`` would pass
    ``pi`` (``cos(theta) <= cos(pi - margin)``) ``cos(theta + margin)`` is
    replaced by ``cos(theta) - margin * sin(margin)``, which keeps the logit
    decreasing in ``theta`` (ArcFace's threshold fallback; with
    ``easy_margin`` the margin is dropped for ``cos(theta) <= 0`` instead).

    Arguments
    ---------
    temperature : float
        Softmax temperature (> 0).
    margin : float
        Additive angular margin in radians (>= 0); 0 gives Khosla's loss.
    contrast_mode : str
        ``"all"``: every view of every utterance is an anchor. ``"one"``:
        only the first view of each utterance is (Khosla's ``"one"``); all
        views are still contrasted against.
    base_temperature : float, optional
        The loss is scaled by ``temperature / base_temperature``; defaults
        to ``temperature`` (no scaling).
    easy_margin : bool
        ArcFace's "easy margin" instead of the threshold fallback.

    Example
    -------
    >>> loss_fn = SupConLoss(temperature=0.1, margin=0.2)
    >>> features = torch.randn(4, 2, 8)  # 4 utterances, 2 views each
    >>> labels = torch.tensor([0, 1, 0, 2])
    >>> loss = loss_fn(features, labels)
    >>> loss.shape, bool(loss > 0)
    (torch.Size([]), True)
    """

    def __init__(
        self,
        temperature=0.1,
        margin=0.2,
        contrast_mode="all",
        base_temperature=None,
        easy_margin=False,
    ):
        super().__init__()
        if not temperature > 0:
            raise ValueError(
                f"SupConLoss temperature must be > 0, got {temperature}"
            )
        if not margin >= 0:
            raise ValueError(f"SupConLoss margin must be >= 0, got {margin}")
        if contrast_mode not in ("all", "one"):
            raise ValueError(
                f"SupConLoss contrast_mode must be 'all' or 'one', "
                f"got {contrast_mode!r}"
            )
        if base_temperature is None:
            base_temperature = temperature
        if not base_temperature > 0:
            raise ValueError(
                f"SupConLoss base_temperature must be > 0, "
                f"got {base_temperature}"
            )
        self.temperature = float(temperature)
        self.margin = float(margin)
        self.contrast_mode = contrast_mode
        self.base_temperature = float(base_temperature)
        self.aam = AdditiveAngularMargin(
            margin=self.margin, scale=1.0, easy_margin=easy_margin
        )

    def forward(self, features, labels=None):
        """Loss of a multi-view batch.

        Arguments
        ---------
        features : torch.Tensor
            ``[B, V, D]``: ``V`` views of each of ``B`` utterances (Khosla's
            layout; ``emotion_invariant.augment.views.to_views`` builds it), or
            ``[N, D]``: one view per row. ``[B, 1, D]``, what SpeechBrain's
            ECAPA emits, is read as ``[N, D]``; to use several views of an
            utterance either reshape them to ``[B, V, D]`` or flatten them to
            ``[N, D]`` with labels replicated (the same loss with
            ``contrast_mode="all"``).
        labels : torch.Tensor, optional
            Integer labels ``[B]`` (or ``[B, 1]``, SpeechBrain's encoded
            label shape), one per utterance. ``None`` makes each utterance
            its own class (the self-supervised NT-Xent case).

        Returns
        -------
        torch.Tensor
            Scalar loss (float32 or wider).

        Example
        -------
        >>> loss_fn = SupConLoss(margin=0.0)
        >>> flat = loss_fn(torch.randn(6, 4), torch.tensor([0, 0, 1, 1, 2, 2]))
        >>> flat.dim()
        0
        """
        if features.dim() == 2:
            features = features.unsqueeze(1)
        if features.dim() != 3:
            raise ValueError(
                f"SupConLoss features must be [B, V, D] or [N, D], got shape "
                f"{tuple(features.shape)}"
            )
        n_utts, n_views, _ = features.shape
        labels = self._check_labels(labels, n_utts, features.device)

        # View-major rows (row v * B + b) make the anchors of "one" the
        # first B rows, so anchor i is contrast row i in both modes.
        dtype = torch.promote_types(features.dtype, torch.float32)
        contrast = F.normalize(
            features.to(dtype).transpose(0, 1).reshape(n_views * n_utts, -1),
            dim=-1,
        )
        contrast_labels = labels.repeat(n_views)
        n_anchors = n_utts if self.contrast_mode == "one" else len(contrast)

        cosine = contrast[:n_anchors] @ contrast.T
        rows = torch.arange(n_anchors, device=features.device)
        is_self = torch.zeros_like(cosine, dtype=torch.bool)
        is_self[rows, rows] = True
        positive = (
            contrast_labels[:n_anchors, None] == contrast_labels[None, :]
        ) & ~is_self
        n_positive = positive.sum(dim=1)
        has_positive = n_positive > 0
        if not bool(has_positive.any()):
            return cosine.sum() * 0.0

        if self.margin > 0:
            margined = self.aam(cosine, positive.to(cosine.dtype))
            cosine = torch.where(positive, margined.to(cosine.dtype), cosine)
        logits = (cosine / self.temperature).masked_fill(is_self, -torch.inf)
        log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        mean_log_prob = torch.where(positive, log_prob, 0.0).sum(dim=1)
        mean_log_prob = mean_log_prob / n_positive.clamp(min=1)
        scale = self.temperature / self.base_temperature
        return -scale * mean_log_prob[has_positive].mean()

    @staticmethod
    def _check_labels(labels, n_utts, device):
        if labels is None:
            return torch.arange(n_utts, device=device)
        if labels.dim() == 2 and labels.shape[1] == 1:
            labels = labels.squeeze(1)
        if labels.dim() != 1 or labels.shape[0] != n_utts:
            raise ValueError(
                f"SupConLoss labels must be [{n_utts}] (one per utterance), "
                f"got shape {tuple(labels.shape)}"
            )
        return labels.to(device)


def speaker_supcon(loss_fn, features, labels, groups=None):
    """Supervised contrastive loss, optionally within each speaker only.

    With ``groups`` (the speaker of each row), ``loss_fn`` runs on each
    speaker's rows alone, so an anchor's negatives are its own speaker's
    other clusters, and the losses are averaged weighted by rows. A speaker
    whose rows all share one label has no negative and is left out; with
    none left the loss is a zero attached to the graph. A batch holds a few
    speakers, so the loop is short.

    Arguments
    ---------
    loss_fn : callable
        ``loss_fn(features, labels)``, e.g. ``SupConLoss``.
    features : torch.Tensor
        ``[B, V, D]`` views.
    labels : torch.Tensor
        ``[B]`` integer labels.
    groups : torch.Tensor, optional
        ``[B]`` speaker index; ``None`` contrasts every row with every row.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> loss_fn = SupConLoss(margin=0.0)
    >>> x = torch.randn(4, 2, 8)
    >>> labels = torch.tensor([0, 1, 2, 2])
    >>> speakers = torch.tensor([0, 0, 1, 1])
    >>> torch.allclose(speaker_supcon(loss_fn, x, labels, speakers),
    ...                loss_fn(x[:2], labels[:2]))
    True
    """
    if groups is None:
        return loss_fn(features, labels)
    total, rows_used = features.sum() * 0.0, 0
    for group in torch.unique(groups):
        rows = groups == group
        if torch.unique(labels[rows]).numel() < 2:
            continue
        n = int(rows.sum())
        total = total + n * loss_fn(features[rows], labels[rows])
        rows_used += n
    return total / max(rows_used, 1)
