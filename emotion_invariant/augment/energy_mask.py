"""Energy-guided, emotion-aware masking of filterbank frames.

Emotion shows most in loud, prosodically marked stretches of speech; hiding
the highest-energy frames pushes a speaker encoder to rely on the rest
(Tian, Hu and Xu, 2025). Frames are masked in spans centred on the loudest
frames until a fixed fraction of each utterance is covered.
"""

import math

import torch
import torch.nn.functional as F
from speechbrain.processing.features import make_padding_mask


def frame_rms(wavs, lengths=None, hop_length=160, win_length=400):
    """RMS energy of each frame, aligned with SpeechBrain's ``Fbank``.

    Frames are centred like SpeechBrain's ``STFT`` (``center=True``, zero
    padding of ``win_length // 2`` on both sides), so the frame count equals
    that of ``Fbank`` with ``n_fft == win_length``. The defaults match
    ``Fbank`` at 16 kHz with 25 ms windows every 10 ms. Samples past each
    relative length are treated as silence.

    Arguments
    ---------
    wavs : torch.Tensor
        Waveforms ``[batch, samples]``.
    lengths : torch.Tensor, optional
        Relative lengths ``[batch]``.
    hop_length : int
        Hop between frames, in samples.
    win_length : int
        Window (and FFT) length, in samples.

    Returns
    -------
    torch.Tensor
        ``[batch, frames]`` with ``frames = 1 + samples // hop_length`` for
        an even ``win_length``.

    Example
    -------
    >>> wavs = torch.cat([torch.zeros(1, 1600), torch.ones(1, 1600)], dim=1)
    >>> rms = frame_rms(wavs)
    >>> rms.shape
    torch.Size([1, 21])
    >>> float(rms[0, 2]), float(rms[0, 18])
    (0.0, 1.0)
    """
    if wavs.dim() != 2:
        raise ValueError(
            f"wavs: expected [batch, samples], got shape {tuple(wavs.shape)}"
        )
    if lengths is not None:
        wavs = wavs * make_padding_mask(wavs, lengths)
    half = win_length // 2
    power = F.pad(wavs.square(), (half, half)).unsqueeze(1)
    mean_power = F.avg_pool1d(power, win_length, hop_length).squeeze(1)
    return mean_power.clamp(min=0).sqrt()


class EnergyGuidedMask(torch.nn.Module):
    """Mask spans of frames centred on the highest-energy frames.

    For each utterance, valid frames are ranked by energy and taken, loudest
    first, as centres of ``span``-frame spans until the spans cover at least
    ``round(mask_ratio * valid_frames)`` frames (the last span may overshoot
    by up to ``span - 1``). Spans are clipped to the valid frames, so
    padding is never touched. Masked frames are filled with the
    utterance's mean feature vector over its valid frames.

    The greedy choice is computed in one pass for the whole batch: a frame
    is covered by the first ``k`` centres when the loudest centre within
    reach has rank below ``k``, which is a min-pool of the ranks over the
    span; the number of centres needed is then read off the sorted result.

    Energy comes, by priority, from ``energy``, from ``wavs`` through
    :func:`frame_rms`, or else from the mean of ``feats`` over the feature
    axis: for log filterbanks a proxy of log energy, which lets the module
    plug into SpeechBrain's ``Augmenter`` that passes ``(x, lengths)`` only.
    The module is the identity in eval mode, keeping inference
    deterministic.

    Arguments
    ---------
    mask_ratio : float
        Fraction of valid frames to mask; 0 disables masking.
    span : int
        Frames per span.
    prob : float
        Probability that an utterance is masked at all.
    hop_length : int
        Hop of the features, in samples (for ``wavs``).
    win_length : int
        Window of the features, in samples (for ``wavs``).

    Example
    -------
    >>> feats = torch.zeros(1, 10, 2)
    >>> energy = torch.arange(10.0).unsqueeze(0)
    >>> masker = EnergyGuidedMask(mask_ratio=0.3, span=3)
    >>> out = masker(feats + torch.arange(10.0)[None, :, None], energy=energy)
    >>> out[0, :, 0].tolist()
    [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 4.5, 4.5, 4.5]
    """

    def __init__(
        self, mask_ratio=0.2, span=5, prob=1.0, hop_length=160, win_length=400
    ):
        super().__init__()
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
        if int(span) != span or span < 1:
            raise ValueError(f"span must be a positive integer, got {span}")
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        self.mask_ratio = mask_ratio
        self.span = int(span)
        self.prob = prob
        self.hop_length = hop_length
        self.win_length = win_length

    def forward(self, feats, lengths=None, wavs=None, energy=None):
        """Mask the loudest spans of each utterance.

        Arguments
        ---------
        feats : torch.Tensor
            Features ``[batch, frames, feat]``.
        lengths : torch.Tensor, optional
            Relative lengths ``[batch]``.
        wavs : torch.Tensor, optional
            The waveforms ``[batch, samples]`` the features came from.
        energy : torch.Tensor, optional
            Frame energies ``[batch, frames]``; overrides ``wavs``.

        Returns
        -------
        torch.Tensor
            Masked features, same shape.
        """
        if feats.dim() != 3:
            raise ValueError(
                "feats: expected [batch, frames, feat], got shape "
                f"{tuple(feats.shape)}"
            )
        if not self.training or self.mask_ratio == 0 or self.prob == 0:
            return feats
        batch, frames, _ = feats.shape
        energy = self._energy(feats, lengths, wavs, energy)
        valid = make_padding_mask(feats[..., 0], lengths)
        n_valid = valid.sum(dim=1)
        n_mask = torch.round(self.mask_ratio * n_valid).long()

        order = energy.masked_fill(~valid, -math.inf).sort(
            dim=1, descending=True, stable=True
        )[1]
        positions = torch.arange(frames, device=feats.device)
        rank = torch.empty_like(order).scatter_(
            1, order, positions.expand(batch, frames)
        )
        rank = rank.float().masked_fill(~valid, math.inf)

        left = self.span // 2
        right = self.span - 1 - left
        reach = F.pad(-rank.unsqueeze(1), (right, left), value=-math.inf)
        first_cover = -F.max_pool1d(reach, self.span, stride=1).squeeze(1)
        first_cover = first_cover.masked_fill(~valid, math.inf)
        last_centre = first_cover.sort(dim=1)[0].gather(
            1, (n_mask - 1).clamp(min=0).unsqueeze(1)
        )

        chosen = torch.rand(batch, device=feats.device) < self.prob
        chosen &= n_mask > 0
        mask = (first_cover <= last_centre) & chosen.unsqueeze(1)

        weights = valid.unsqueeze(-1).to(feats.dtype)
        mean = (feats * weights).sum(dim=1) / n_valid.clamp(min=1).unsqueeze(
            1
        ).to(feats.dtype)
        return torch.where(mask.unsqueeze(-1), mean.unsqueeze(1), feats)

    def _energy(self, feats, lengths, wavs, energy):
        if energy is None and wavs is not None:
            energy = frame_rms(wavs, lengths, self.hop_length, self.win_length)
            source = "frame_rms(wavs)"
        elif energy is not None:
            source = "energy"
        else:
            return feats.detach().mean(dim=-1)
        if tuple(energy.shape) != tuple(feats.shape[:2]):
            raise ValueError(
                f"{source} has shape {tuple(energy.shape)} but feats have "
                f"{tuple(feats.shape[:2])} [batch, frames]; check hop_length "
                f"({self.hop_length}) and win_length ({self.win_length})"
            )
        return energy.detach().to(feats.device)
