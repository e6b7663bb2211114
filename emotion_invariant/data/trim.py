"""Energy-based trimming of leading and trailing silence.

Acted corpora such as RAVDESS keep about a second of silence before and
after each sentence: a random 1.5 s training crop of such a file is often
half silence, and a CopyPaste view may paste silence onto silence. Trimming
to the frames within ``threshold_db`` of the loudest one keeps the crops on
speech. Evaluation reads whole files and does not trim.
"""

import torch


def voiced_region(wave, sample_rate, threshold_db=40.0, frame=0.02):
    """First and last sample of the frames within ``threshold_db`` of the
    loudest frame (RMS over ``frame`` seconds).

    Arguments
    ---------
    wave : torch.Tensor
        ``[time]`` waveform.
    sample_rate : int
        Its sampling rate.
    threshold_db : float
        Frames quieter than the loudest by more than this are silence.
    frame : float
        Frame length in seconds.

    Returns
    -------
    tuple of int
        ``(start, stop)`` sample indices; the whole wave when it is shorter
        than a frame or silent throughout.

    Example
    -------
    >>> wave = torch.cat([torch.zeros(800), torch.ones(1600), torch.zeros(800)])
    >>> voiced_region(wave, 16000, frame=0.01)
    (800, 2400)
    """
    size = max(1, int(frame * sample_rate))
    n = wave.numel() // size
    if n == 0:
        return 0, wave.numel()
    rms = wave[: n * size].reshape(n, size).pow(2).mean(dim=1).sqrt()
    loudest = rms.max()
    if loudest <= 0:
        return 0, wave.numel()
    level = 20 * torch.log10(rms.clamp_min(1e-12) / loudest)
    active = torch.nonzero(level > -threshold_db).squeeze(1)
    start = int(active[0]) * size
    stop = (int(active[-1]) + 1) * size
    if int(active[-1]) == n - 1:
        stop = wave.numel()  # the partial last frame belongs to the speech
    return start, stop


def trim_silence(wave, sample_rate, threshold_db=40.0, min_seconds=0.5):
    """``wave`` without its leading and trailing silence.

    The voiced region is widened symmetrically to at least ``min_seconds``
    (within the wave), so a short burst still leaves a usable crop.

    Example
    -------
    >>> wave = torch.cat([torch.zeros(8000), torch.ones(16000),
    ...                   torch.zeros(8000)])
    >>> trim_silence(wave, 16000).numel()
    16000
    >>> trim_silence(wave, 16000, min_seconds=1.5).numel()
    24000
    """
    start, stop = voiced_region(wave, sample_rate, threshold_db)
    short = int(min_seconds * sample_rate) - (stop - start)
    if short > 0:
        start = max(0, start - short // 2)
        stop = min(wave.numel(), start + int(min_seconds * sample_rate))
        start = max(0, stop - int(min_seconds * sample_rate))
    return wave[start:stop]
