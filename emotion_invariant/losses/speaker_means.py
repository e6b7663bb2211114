"""Speaker mean matching: the loss of the best linear speaker adversary.

A linear classifier can tell speakers apart from features no better than a
constant guess if and only if every speaker's mean of the features is the
same (Belrose et al., "LEACE: Perfect linear concept erasure in closed
form", NeurIPS 2023; Ravfogel et al., "Linear adversarial concept
erasure", ICML 2022). A gradient-reversal adversary (:mod:`adversarial`)
chases that optimum one mini-batch at a time; on a frozen encoder's
features the head it trains moves faster than the adversary follows, and a
fresh linear probe still names the speakers. This term goes to the
optimum's condition directly: the share of each feature dimension's
variance that lies between the speakers' means, averaged over dimensions,
on the whole training set at every step. It is 0 exactly when the speaker
means coincide, and scale-free per dimension, so the head cannot satisfy it
by shrinking a speaker direction that a standardising probe would then
scale back up.

A typical training step, with ``pooled`` the features of every training
utterance and ``spk`` their speaker indices::

    loss = emo_loss + weight * between_speaker_share(pooled, spk)
"""

import torch


def between_speaker_share(features, speakers, eps=1e-8):
    """Mean over dimensions of the between-speaker share of the variance.

    For each dimension ``d``: ``sum_s n_s (m_sd - m_d)^2 / sum_i (x_id -
    m_d)^2``, with ``m_sd`` speaker ``s``'s mean, ``n_s`` its utterances
    and ``m_d`` the mean over all of them (the correlation ratio eta^2 of a
    one-way analysis of variance); then averaged over dimensions. It lies
    in [0, 1]: 0 when every speaker has the same mean, 1 when each speaker's
    utterances are identical.

    Arguments
    ---------
    features : torch.Tensor
        ``[N, D]``.
    speakers : torch.Tensor
        ``[N]`` integer speaker indices (any non-negative integers).
    eps : float
        Added to each dimension's variance, so a constant dimension counts
        as 0.

    Returns
    -------
    torch.Tensor
        A scalar, differentiable with respect to ``features``.

    Example
    -------
    >>> x = torch.tensor([[0.0, 1.0], [2.0, 1.0], [0.0, 3.0], [2.0, 3.0]])
    >>> # speakers differ only on the second dimension
    >>> between_speaker_share(x, torch.tensor([0, 0, 1, 1]))
    tensor(0.5000)
    >>> between_speaker_share(x, torch.tensor([0, 1, 0, 1]))
    tensor(0.5000)
    >>> between_speaker_share(x, torch.tensor([0, 1, 1, 0]))
    tensor(0.)
    """
    if features.dim() != 2:
        raise ValueError(
            f"between_speaker_share: features must be [N, D], got shape "
            f"{tuple(features.shape)}"
        )
    speakers = torch.as_tensor(speakers, device=features.device).long()
    if speakers.shape != features.shape[:1]:
        raise ValueError(
            f"between_speaker_share: {features.shape[0]} feature rows but "
            f"{speakers.numel()} speaker indices"
        )
    if speakers.numel() and int(speakers.min()) < 0:
        raise ValueError(
            "between_speaker_share: speaker indices must be >= 0, got "
            f"{int(speakers.min())}"
        )
    _, index = torch.unique(speakers, return_inverse=True)
    n_speakers = int(index.max()) + 1 if index.numel() else 0
    if n_speakers < 2:
        raise ValueError(
            f"between_speaker_share needs at least 2 speakers, got {n_speakers}"
        )
    centred = features - features.mean(0)
    sums = centred.new_zeros(n_speakers, features.shape[1])
    sums.index_add_(0, index, centred)
    counts = torch.bincount(index, minlength=n_speakers).to(centred)
    between = (sums**2 / counts[:, None]).sum(0)
    total = (centred**2).sum(0)
    return (between / (total + eps * len(features))).mean()
