"""The audio of the demo corpus: espeak-ng, then the emotion's signal.

Each utterance is spoken by espeak-ng with its own voice variant, then
resampled to 16 kHz, trimmed, tilted and levelled. espeak-ng runs in
worker processes, each with its own data folder.
"""

import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
import soundfile
from scipy.signal import lfilter, resample_poly

from emotion_invariant.atomic import atomic_path
from emotion_invariant.corpora.synth.voices import (
    EMOTION_CODES,
    SENTENCES,
    SynthError,
    utterance_params,
    variant_text,
)

SAMPLE_RATE = 16000
ESPEAK_RATE = 22050


def espeak_data_dir():
    """Locate espeak-ng and its data folder, or fail with how to install it.

    Returns
    -------
    str
        The ``espeak-ng-data`` folder of the installed espeak-ng.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SynthError(
            "espeak-ng is not installed (it synthesizes the demo corpus): "
            "install it with `sudo apt-get install espeak-ng` on "
            "Debian/Ubuntu, or run `make demo` as root to have it installed"
        )
    out = subprocess.run(
        [exe, "--version"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"Data at:\s*(\S+)", out)
    if not match or not os.path.isdir(match.group(1)):
        raise SynthError(f"cannot find espeak-ng's data folder in: {out!r}")
    return match.group(1)


def _tilt(x, amount):
    """Spectral tilt: >0 brightens (vocal tension), <0 darkens (soft voice)."""
    if amount >= 0:
        y = lfilter([1.0, -0.9 * min(amount, 1.0)], [1.0], x)
        return 0.5 * x + 0.5 * y * (1.0 + amount)
    pole = 0.85 * min(-amount, 1.0)
    return lfilter([1.0 - pole], [1.0, -pole], x)


def _trim(x, top_db=40.0, margin=0.05):
    """Trim leading and trailing silence below ``top_db`` from the peak."""
    frame = int(0.02 * SAMPLE_RATE)
    n = len(x) // frame
    if n == 0:
        return x
    rms = np.sqrt(
        np.mean(x[: n * frame].reshape(n, frame) ** 2, axis=1) + 1e-12
    )
    loud = np.nonzero(20 * np.log10(rms / rms.max()) > -top_db)[0]
    pad = int(margin * SAMPLE_RATE)
    start = max(0, loud[0] * frame - pad)
    stop = min(len(x), (loud[-1] + 1) * frame + pad)
    return x[start:stop]


def _level(x, gain_db, target_rms_db=-23.0, peak=0.89):
    """Set loudness per emotion, limited so that nothing clips."""
    rms = np.sqrt(np.mean(x**2)) + 1e-9
    gain = 10 ** ((target_rms_db + gain_db) / 20) / rms
    gain = min(gain, peak / (np.max(np.abs(x)) + 1e-9))
    return x * gain


def estimate_f0(x, sr=SAMPLE_RATE, fmin=60.0, fmax=450.0):
    """Median F0 (Hz) over voiced frames by normalised autocorrelation.

    A small, dependency-free estimator good enough for corpus summaries.

    Arguments
    ---------
    x : numpy.ndarray
        Mono signal.
    sr : int
        Sample rate.
    fmin, fmax : float
        Search range in Hz.

    Returns
    -------
    float
        Median F0 of voiced frames, or ``nan`` when none is voiced.

    Example
    -------
    >>> t = np.arange(16000) / 16000
    >>> round(estimate_f0(np.sin(2 * np.pi * 120 * t)))
    120
    """
    win, hop = int(0.04 * sr), int(0.02 * sr)
    n = 1 + (len(x) - win) // hop
    if n <= 0:
        return float("nan")
    idx = np.arange(win)[None, :] + hop * np.arange(n)[:, None]
    frames = x[idx] - x[idx].mean(axis=1, keepdims=True)
    energy = np.sum(frames**2, axis=1)
    spec = np.fft.rfft(frames, 2 * win, axis=1)
    # Unbiased autocorrelation, so that short lags (octave errors up) are
    # not favoured merely for overlapping more samples.
    ac = np.fft.irfft(np.abs(spec) ** 2, axis=1)[:, :win]
    ac = ac * (win / (win - np.arange(win)))[None, :]
    lo, hi = int(sr / fmax), int(sr / fmin)
    # The shortest lag close to the best one: multiples of the period score
    # almost as high and would halve F0 (octave errors).
    band = ac[:, lo:hi]
    near_best = band >= 0.85 * band.max(axis=1, keepdims=True)
    lags = lo + np.argmax(near_best, axis=1)
    # Climb to the local peak that candidate lag sits on.
    ahead = np.minimum(lags[:, None] + np.arange(8)[None, :], hi - 1)
    rows = np.arange(n)[:, None]
    lags = ahead[np.arange(n), np.argmax(ac[rows, ahead], axis=1)]
    strength = ac[np.arange(n), lags] / (ac[:, 0] + 1e-12)
    voiced = (strength > 0.5) & (energy > 0.05 * energy.max())
    if not voiced.any():
        return float("nan")
    # Parabolic interpolation around the peak for sub-sample lag accuracy.
    left = ac[np.arange(n), lags - 1]
    mid = ac[np.arange(n), lags]
    right = ac[np.arange(n), np.minimum(lags + 1, win - 1)]
    denom = left - 2 * mid + right
    safe = np.where(np.abs(denom) > 1e-12, denom, 1.0)
    shift = np.where(np.abs(denom) > 1e-12, 0.5 * (left - right) / safe, 0.0)
    return float(np.median(sr / (lags + shift)[voiced]))


class _Worker:
    """Per-process espeak-ng data folder with a single voice-variant file.

    espeak-ng reads every variant in its folder and stops at a few hundred,
    so each process keeps one variant and rewrites it before each call.
    """

    def __init__(self, data_dir, scratch=None):
        self.root = tempfile.mkdtemp(prefix="espeak-", dir=scratch)
        home = os.path.join(self.root, "espeak-ng-data")
        os.makedirs(os.path.join(home, "voices", "!v"))
        for name in os.listdir(data_dir):
            if name != "voices":
                os.symlink(
                    os.path.join(data_dir, name), os.path.join(home, name)
                )
        self.variant = os.path.join(home, "voices", "!v", "synth")
        self.wav = os.path.join(self.root, "out.wav")

    def speak(self, text, base, variant, rate):
        with open(self.variant, "w") as f:
            f.write(variant)
        cmd = [
            "espeak-ng",
            f"--path={self.root}",
            "-v",
            f"{base}+synth",
            "-s",
            str(int(round(rate))),
            "-w",
            self.wav,
            text,
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise SynthError(
                f"espeak-ng failed ({' '.join(cmd)}): {proc.stderr}"
            )
        audio, sr = soundfile.read(self.wav, dtype="float64")
        if sr != ESPEAK_RATE:
            raise SynthError(f"espeak-ng wrote {sr} Hz, expected {ESPEAK_RATE}")
        return audio


_WORKER = None


def init_worker(data_dir, scratch):
    """Give this worker process its espeak-ng folder (a pool initializer)."""
    global _WORKER
    _WORKER = _Worker(data_dir, scratch)


def synthesize(job):
    """Synthesize one utterance; returns its manifest row and statistics."""
    spk, emo, sent_idx, seed, out_dir = job
    rng = np.random.default_rng(
        [seed, int(spk["spk_id"][3:]), sent_idx, EMOTION_CODES[emo]]
    )
    params = utterance_params(spk, emo, rng)
    text = SENTENCES[sent_idx]
    audio = _WORKER.speak(
        text, spk["base"], variant_text(spk["gender"], params), params["rate"]
    )
    audio = resample_poly(audio, 320, 441)  # 22050 Hz -> 16 kHz
    audio = _tilt(_trim(audio), params["tilt"])
    audio = _level(audio, params["gain_db"])
    uid = f"{spk['spk_id']}_{emo}_{sent_idx:03d}"
    rel = os.path.join("wavs", spk["spk_id"], uid + ".wav")
    path = os.path.join(out_dir, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with atomic_path(path) as tmp:
        soundfile.write(tmp, audio, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    duration = len(audio) / SAMPLE_RATE
    row = {
        "ID": uid,
        "duration": round(duration, 3),
        "wav": "$data_root/" + rel,
        "spk_id": spk["spk_id"],
        "emo": emo,
        "text": text,
        "gender": spk["gender"],
        "lang": "en",
        "emo_raw": emo,
    }
    stats = {
        "f0": estimate_f0(audio),
        "words_per_s": len(text.split()) / duration,
        "rms_db": float(20 * np.log10(np.sqrt(np.mean(audio**2)) + 1e-12)),
        "peak": float(np.max(np.abs(audio))),
        "duration": duration,
    }
    return row, stats
