"""Emotion CopyPaste: splice a same-speaker utterance in another emotion.

CopyPaste for emotion data (Pappagari et al., 2021) concatenates segments
of two utterances; here both come from one speaker in two emotions, so the
result keeps the speaker and mixes in the other emotion, giving the
parallel view used by emotion-invariant speaker learning (Tian, Hu and Xu,
2025).
"""

import random

import torch

from emotion_invariant.seeding import as_rng


def _check_wave(wave, name):
    if not isinstance(wave, torch.Tensor) or wave.dim() != 1:
        shape = tuple(wave.shape) if isinstance(wave, torch.Tensor) else None
        raise ValueError(
            f"{name}: expected a 1-D torch tensor of samples, got "
            f"{type(wave).__name__} with shape {shape}"
        )
    if wave.numel() == 0:
        raise ValueError(f"{name}: empty waveform")


def _check_segment(segment):
    low, high = segment
    if not 0.0 <= low <= high <= 1.0:
        raise ValueError(
            f"segment must be (low, high) with 0 <= low <= high <= 1, "
            f"got {tuple(segment)}"
        )


def _crop(wave, num_samples, rng):
    if wave.numel() <= num_samples:
        return wave
    start = rng.randrange(wave.numel() - num_samples + 1)
    return wave[start : start + num_samples]


def _fit(wave, num_samples):
    missing = num_samples - wave.numel()
    if missing > 0:
        return torch.nn.functional.pad(wave, (0, missing))
    return wave[:num_samples]


def random_crop(wave, num_samples, rng=None):
    """Crop a random contiguous chunk, zero-padding short waves at the end.

    Arguments
    ---------
    wave : torch.Tensor
        1-D waveform.
    num_samples : int
        Output length.
    rng : None, int, random.Random or numpy.random.Generator
        Source of randomness for the start.

    Returns
    -------
    torch.Tensor
        1-D, ``num_samples`` long.

    Example
    -------
    >>> random_crop(torch.arange(10.0), 4, rng=0).shape
    torch.Size([4])
    >>> random_crop(torch.ones(2), 4, rng=0)
    tensor([1., 1., 0., 0.])
    """
    _check_wave(wave, "wave")
    return _fit(_crop(wave, num_samples, as_rng(rng)), num_samples)


def emotion_copypaste(
    anchor, partner, rng=None, segment=(0.3, 0.7), num_samples=None
):
    """Concatenate a chunk of the anchor with a chunk of its partner.

    A fraction ``f`` drawn uniformly from ``segment`` of the output comes
    from a random chunk of the anchor, the rest from a random chunk of the
    partner (a same-speaker utterance in another emotion); the two are
    joined in random order, so the split point is random too. Sources
    shorter than their share are used whole and the output is zero-padded
    at the end, keeping batches rectangular.

    Arguments
    ---------
    anchor : torch.Tensor
        1-D anchor waveform.
    partner : torch.Tensor
        1-D partner waveform (moved to the anchor's device and dtype).
    rng : None, int, random.Random or numpy.random.Generator
        Source of randomness (see
        :func:`emotion_invariant.data.parallel.as_rng`).
    segment : tuple of float
        Range of the anchor's share of the output.
    num_samples : int, optional
        Output length (default: the anchor's length).

    Returns
    -------
    torch.Tensor
        1-D, ``num_samples`` long.

    Example
    -------
    >>> out = emotion_copypaste(torch.ones(100), 2 * torch.ones(80), rng=1)
    >>> out.shape, set(out.tolist()) == {1.0, 2.0}
    (torch.Size([100]), True)
    >>> 30 <= int((out == 1).sum()) <= 70
    True
    """
    _check_wave(anchor, "anchor")
    _check_wave(partner, "partner")
    _check_segment(segment)
    rng = as_rng(rng)
    if num_samples is None:
        num_samples = anchor.numel()
    n_anchor = round(rng.uniform(*segment) * num_samples)
    parts = [
        _crop(anchor, n_anchor, rng),
        _crop(partner.to(anchor), num_samples - n_anchor, rng),
    ]
    if rng.random() < 0.5:
        parts.reverse()
    return _fit(torch.cat(parts), num_samples)


class EmotionCopyPaste:
    """The parallel view of an utterance for a SpeechBrain data pipeline.

    With probability ``prob`` the view is an :func:`emotion_copypaste` of
    the anchor and a same-speaker partner from a
    :class:`~emotion_invariant.data.parallel.ParallelIndex`; otherwise it
    is a plain random crop of the partner. Either way the pair shares the
    speaker. A speaker with a single utterance gives a new crop of the
    anchor itself.

    Randomness comes from ``(seed, epoch, row_id)``, so a view is the same
    whatever DataLoader worker makes it, and changes across epochs once
    :meth:`set_epoch` is called (e.g. in ``Brain.on_stage_start``, before
    the workers are started).

    Arguments
    ---------
    index : ParallelIndex
        Finds partners; its ``counts`` record the kinds drawn.
    prob : float
        Probability of a CopyPaste view rather than a plain partner crop.
    segment : tuple of float
        Range of the anchor's share of a CopyPaste view.
    partner_emotions : collection of str, optional
        Emotions a partner may have (default: the index's setting).
    seed : int
        Base seed.

    Example
    -------
    >>> from emotion_invariant.data.parallel import ParallelIndex
    >>> rows = [
    ...     {"ID": "a1", "spk_id": "A", "emo": "neu", "wav": "a1.wav",
    ...      "duration": "1.0"},
    ...     {"ID": "a2", "spk_id": "A", "emo": "ang", "wav": "a2.wav",
    ...      "duration": "1.0"},
    ... ]
    >>> waves = {"a1": torch.zeros(50), "a2": torch.ones(50)}
    >>> augment = EmotionCopyPaste(ParallelIndex(rows), seed=0)
    >>> view, kind = augment("a1", waves["a1"], lambda r: waves[r["ID"]], 40)
    >>> view.shape, kind
    (torch.Size([40]), 'emotion')
    """

    def __init__(
        self,
        index,
        prob=1.0,
        segment=(0.3, 0.7),
        partner_emotions=None,
        seed=0,
    ):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        _check_segment(segment)
        self.index = index
        self.prob = prob
        self.segment = tuple(segment)
        self.partner_emotions = partner_emotions
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch):
        """Change the views drawn from now on (call once per epoch).

        Arguments
        ---------
        epoch : int
            The current epoch.
        """
        self.epoch = epoch

    def __call__(self, row_id, anchor_wave, load_fn, num_samples, rng=None):
        """Make the parallel view of one utterance.

        Arguments
        ---------
        row_id : str
            ID of the anchor utterance in the index.
        anchor_wave : torch.Tensor
            1-D anchor waveform (already loaded).
        load_fn : callable
            ``load_fn(row) -> 1-D torch.Tensor`` loads a partner's audio.
        num_samples : int
            Length of the view.
        rng : None, int, random.Random or numpy.random.Generator
            Overrides the ``(seed, epoch, row_id)`` generator.

        Returns
        -------
        view : torch.Tensor
            1-D, ``num_samples`` long.
        kind : str
            The partner's kind: ``"emotion"``, ``"speaker"`` or ``"self"``.
        """
        if rng is None:
            # str seeds are hashed with SHA-512: stable across processes
            rng = random.Random(f"{self.seed}:{self.epoch}:{row_id}")
        else:
            rng = as_rng(rng)
        row, kind = self.index.partner(row_id, rng, self.partner_emotions)
        if kind == "self":
            return random_crop(anchor_wave, num_samples, rng), kind
        partner = load_fn(row)
        _check_wave(partner, f"audio of {row['ID']} (partner of {row_id})")
        if rng.random() < self.prob:
            view = emotion_copypaste(
                anchor_wave, partner, rng, self.segment, num_samples
            )
        else:
            view = random_crop(partner.to(anchor_wave), num_samples, rng)
        return view, kind
