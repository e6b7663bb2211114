"""Reading a manifest row's audio: the one reader of training and scoring.

soundfile reads the file (or the row's ``start``/``stop`` samples), the
channels are mixed down to mono and the signal resampled to the model's
rate. A row without usable audio is an :class:`AudioError` naming it.
"""

import soundfile
import torch
import torchaudio

from emotion_invariant.data.manifest import ManifestError, resolve_wav


class AudioError(ManifestError):
    """A manifest row whose audio cannot be read."""


def read_audio(row, data_root=None, sample_rate=16000):
    """Read one manifest row's audio as a mono float32 tensor.

    Arguments
    ---------
    row : dict
        Manifest row with ``ID`` and ``wav``; optional ``start`` and ``stop``
        are sample indices in the file's own rate, as in SpeechBrain's
        VoxCeleb manifests.
    data_root : str, optional
        What a leading ``$data_root`` in ``wav`` stands for.
    sample_rate : int
        Rate to resample to.

    Returns
    -------
    torch.Tensor
        ``[T]`` waveform.

    Example
    -------
    >>> import os, tempfile, soundfile, numpy
    >>> folder = tempfile.mkdtemp()
    >>> soundfile.write(os.path.join(folder, "a.wav"),
    ...                 numpy.zeros((800, 2)), 8000)
    >>> read_audio({"ID": "a", "wav": "$data_root/a.wav"}, folder).shape
    torch.Size([1600])
    """
    where = f"utterance {row.get('ID')!r}"
    wav = row.get("wav")
    if not wav:
        raise AudioError(f"{where}: no 'wav' field")
    if wav.startswith("$data_root") and data_root is None:
        raise AudioError(f"{where}: {wav} needs data_root")
    path = resolve_wav(wav, data_root)
    start = int(row["start"]) if row.get("start") not in (None, "") else 0
    stop = int(row["stop"]) if row.get("stop") not in (None, "") else None
    try:
        audio, rate = soundfile.read(
            path, start=start, stop=stop, dtype="float32", always_2d=True
        )
    except Exception as err:  # libsndfile raises several types
        raise AudioError(f"{where}: cannot read {path}: {err}") from err
    if audio.shape[0] == 0:
        raise AudioError(f"{where}: no audio in {path} [{start}:{stop}]")
    signal = torch.from_numpy(audio).mean(dim=1)
    if rate != sample_rate:
        signal = torchaudio.functional.resample(signal, rate, sample_rate)
    return signal


def random_segment(wave, length, rng):
    """At most ``length`` samples of ``wave``, from a start drawn by ``rng``.

    A wave no longer than ``length`` is returned whole and draws nothing,
    so a training crop seeded by (seed, epoch, utterance) is the same in a
    resumed run as in an unbroken one.

    Arguments
    ---------
    wave : torch.Tensor
        ``[T]`` waveform.
    length : int
        The most samples to keep.
    rng : random.Random
        Generator of the start.

    Returns
    -------
    torch.Tensor

    Example
    -------
    >>> import random
    >>> random_segment(torch.arange(10), 4, random.Random(0))
    tensor([6, 7, 8, 9])
    >>> random_segment(torch.arange(3), 4, random.Random(0))
    tensor([0, 1, 2])
    """
    if wave.numel() <= length:
        return wave
    start = rng.randrange(wave.numel() - length + 1)
    return wave[start : start + length]
