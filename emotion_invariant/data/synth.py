"""The embedded demo corpus: synthetic emotional speech from espeak-ng.

Pseudo-speakers are espeak-ng voice variants (formant scalings, pitch base
and range, voice quality) on several English base voices. Each emotion is a
prosody *and* voice-quality transform of that speaker (F0 level and range,
rate, loudness, vocal-tract scaling, spectral tilt, breathiness, roughness)
with per-utterance jitter, so emotion moves the very cues a speaker encoder
relies on. Sentences are parallel across emotions, like ESD. The corpus is
synthetic: it exists to run, test and compare the recipes offline, not to
report results comparable with real corpora.

Command line::

    python -m emotion_invariant.data.synth --out DIR [--speakers N]
        [--utterances N] [--emotions neu hap ang sad] [--seed S] [--jobs J]
"""

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from multiprocessing import get_context

import numpy as np
import soundfile
from scipy.signal import lfilter, resample_poly
from tqdm import tqdm

from emotion_invariant.data.corpora import already_prepared, corpus_content
from emotion_invariant.data.manifest import (
    ManifestError,
    read_manifest,
    read_splits,
    write_manifest,
)
from emotion_invariant.data.trials import make_trials, write_trials
from emotion_invariant.utils import (
    atomic_open,
    atomic_path,
    os_error_message,
    staged_files,
)

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
ESPEAK_RATE = 22050
BASE_VOICES = (
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-scotland",
    "en-us",
    "en-us-nyc",
    "en-029",
    "en",
)
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
)

# Emotion transforms, relative to the speaker's neutral voice. Values are
# multiplicative unless named *_db (decibels) or *_add (additive).
EMOTION_STYLES = {
    "neu": {},
    "hap": {
        "pitch": 1.35,
        "range": 1.8,
        "rate": 1.12,
        "formant": 1.09,
        "gain_db": 2.0,
        "tilt": 0.4,
        "flutter_add": 8,
    },
    "ang": {
        "pitch": 1.4,
        "range": 1.5,
        "rate": 1.15,
        "formant": 1.1,
        "f1": 1.12,
        "gain_db": 5.0,
        "tilt": 0.8,
        "roughness_add": 3,
    },
    "sad": {
        "pitch": 0.8,
        "range": 0.45,
        "rate": 0.8,
        "formant": 0.92,
        "gain_db": -5.0,
        "tilt": -0.8,
        "breath_add": 35,
    },
    "sur": {
        "pitch": 1.5,
        "range": 2.1,
        "rate": 0.95,
        "formant": 1.06,
        "gain_db": 2.0,
        "tilt": 0.3,
    },
}
DEFAULT_EMOTIONS = ("neu", "hap", "ang", "sad")
SPLIT_FRACTIONS = {"dev": 0.06}
MIN_TEST_SPEAKERS = 40


class SynthError(RuntimeError):
    """The demo corpus cannot be synthesized (espeak-ng missing, bad size)."""


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


def draw_speakers(n_speakers, seed, min_distance=0.35):
    """Draw pseudo-speakers whose voices are kept apart.

    Gender, base voice and continuous parameters are drawn independently;
    a candidate closer than ``min_distance`` (in normalised parameter space)
    to an accepted speaker of the same gender and base voice is redrawn, so
    speakers do not collide by chance.

    Arguments
    ---------
    n_speakers : int
        How many speakers.
    seed : int
        Random seed.
    min_distance : float
        Minimum normalised distance between two speakers.

    Returns
    -------
    list of dict
        One dict of voice parameters per speaker.

    Example
    -------
    >>> spk = draw_speakers(4, seed=0)
    >>> [s["spk_id"] for s in spk]
    ['spk000', 'spk001', 'spk002', 'spk003']
    >>> spk == draw_speakers(4, seed=0)
    True
    """
    rng = np.random.default_rng([seed, 1])
    speakers = []
    attempts = 0
    while len(speakers) < n_speakers:
        attempts += 1
        if attempts > 200 * n_speakers:
            raise SynthError(
                f"cannot place {n_speakers} speakers at min_distance "
                f"{min_distance}: lower it or ask for fewer speakers"
            )
        gender = "m" if rng.random() < 0.5 else "f"
        # espeak-ng takes pitch as (base, top) in Hz, each at most 255: keep
        # female bases low enough for the raised pitch of aroused emotions.
        lo, hi = (75.0, 125.0) if gender == "m" else (140.0, 180.0)
        cand = {
            "gender": gender,
            "base": BASE_VOICES[rng.integers(len(BASE_VOICES))],
            "pitch": float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
            "range": float(rng.uniform(0.3, 0.8)),
            "formant": float(
                rng.uniform(0.88, 1.02)
                if gender == "m"
                else rng.uniform(1.02, 1.18)
            ),
            "formant_jitter": [float(x) for x in rng.uniform(0.95, 1.05, 4)],
            "rate": float(rng.uniform(145, 185)),
            "breath": int(rng.integers(0, 25)),
            "roughness": int(rng.integers(0, 4)),
            "flutter": int(rng.integers(0, 20)),
            "tilt": float(rng.uniform(-0.3, 0.3)),
        }
        vec = _voice_vector(cand)
        if any(
            s["gender"] == cand["gender"]
            and s["base"] == cand["base"]
            and np.linalg.norm(vec - _voice_vector(s)) < min_distance
            for s in speakers
        ):
            continue
        cand["spk_id"] = f"spk{len(speakers):03d}"
        speakers.append(cand)
    return speakers


def _voice_vector(spk):
    """Normalised continuous voice parameters, for the collision check."""
    return np.array(
        [
            np.log(spk["pitch"]) / 0.08,
            spk["formant"] / 0.025,
            spk["range"] / 0.15,
            spk["rate"] / 12.0,
            spk["tilt"] / 0.15,
        ]
    ) * (1.0 / 4.0)


def _utterance_params(spk, emo, rng):
    """Voice parameters of one utterance: speaker x emotion x jitter."""
    style = EMOTION_STYLES[emo]

    def jitter(scale):
        return float(np.exp(rng.normal(0.0, scale)))

    formant = spk["formant"] * style.get("formant", 1.0) * jitter(0.01)
    return {
        "pitch": spk["pitch"] * style.get("pitch", 1.0) * jitter(0.04),
        "range": spk["range"] * style.get("range", 1.0) * jitter(0.08),
        "rate": spk["rate"] * style.get("rate", 1.0) * jitter(0.04),
        "formants": [
            formant * j * (style.get("f1", 1.0) if k == 1 else 1.0)
            for k, j in enumerate(spk["formant_jitter"])
        ],
        "breath": spk["breath"] + style.get("breath_add", 0),
        "roughness": min(7, spk["roughness"] + style.get("roughness_add", 0)),
        "flutter": spk["flutter"] + style.get("flutter_add", 0),
        "tilt": spk["tilt"] + style.get("tilt", 0.0) + rng.normal(0.0, 0.05),
        "gain_db": style.get("gain_db", 0.0) + rng.normal(0.0, 1.0),
    }


def _variant_text(gender, params):
    """An espeak-ng voice-variant file for one utterance."""
    base = min(250, int(round(params["pitch"])))
    top = min(255, int(round(params["pitch"] * (1.0 + params["range"]))))
    lines = [
        "language variant",
        "name synth",
        f"gender {'male' if gender == 'm' else 'female'}",
        f"pitch {base} {max(top, base + 1)}",
    ]
    for k, scale in enumerate(params["formants"]):
        lines.append(f"formant {k} {int(round(100 * scale))} 100 100")
    breath = params["breath"]
    if breath:
        lines.append(
            "breath " + " ".join([str(breath // 2)] + [str(breath)] * 7)
        )
    lines.append(f"roughness {params['roughness']}")
    lines.append(f"flutter {params['flutter']}")
    return "\n".join(lines) + "\n"


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


def _init_worker(data_dir, scratch):
    global _WORKER
    _WORKER = _Worker(data_dir, scratch)


def _synthesize(job):
    """Synthesize one utterance; returns its manifest row and statistics."""
    spk, emo, sent_idx, seed, out_dir = job
    rng = np.random.default_rng(
        [seed, int(spk["spk_id"][3:]), sent_idx, _EMO_CODE[emo]]
    )
    params = _utterance_params(spk, emo, rng)
    text = SENTENCES[sent_idx]
    audio = _WORKER.speak(
        text, spk["base"], _variant_text(spk["gender"], params), params["rate"]
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


_EMO_CODE = {emo: k for k, emo in enumerate(EMOTION_STYLES)}


def split_speakers(speakers, seed, n_test=None):
    """Speaker-disjoint train/dev/test splits, balanced by gender.

    Arguments
    ---------
    speakers : list of dict
        As returned by :func:`draw_speakers`.
    seed : int
        Random seed.
    n_test : int, optional
        Test speakers; defaults to a quarter, at least
        :data:`MIN_TEST_SPEAKERS` when there are enough speakers.

    Returns
    -------
    dict
        ``{"train": [...], "dev": [...], "test": [...]}`` speaker ids.

    Example
    -------
    >>> splits = split_speakers(draw_speakers(12, 0), seed=0)
    >>> sorted(len(v) for v in splits.values())
    [2, 3, 7]
    """
    n = len(speakers)
    if n < 3:
        raise SynthError(
            f"need at least 3 speakers for train/dev/test, got {n}"
        )
    if n_test is None:
        # Two test speakers at least, so that non-target trials exist.
        n_test = max(2 if n >= 4 else 1, n // 4)
        if n >= 3 * MIN_TEST_SPEAKERS:
            n_test = max(n_test, MIN_TEST_SPEAKERS)
    n_dev = max(2 if n >= 6 else 1, int(round(n * SPLIT_FRACTIONS["dev"])))
    rng = np.random.default_rng([seed, 2])
    # Alternate genders so that every split gets both.
    by_gender = defaultdict(list)
    for spk in speakers:
        by_gender[spk["gender"]].append(spk["spk_id"])
    for ids in by_gender.values():
        rng.shuffle(ids)
    order = []
    queues = [by_gender[g] for g in sorted(by_gender)]
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop())
    return {
        "test": sorted(order[:n_test]),
        "dev": sorted(order[n_test : n_test + n_dev]),
        "train": sorted(order[n_test + n_dev :]),
    }


def synthesize_corpus(
    out,
    speakers=160,
    utterances=10,
    emotions=DEFAULT_EMOTIONS,
    seed=0,
    jobs=None,
):
    """Synthesize the demo corpus into ``out``.

    Writes ``out/wavs/<spk>/<ID>.wav`` (16 kHz mono), the manifest
    ``out/synth.csv`` (``wav`` relative to ``$data_root`` = ``out``),
    ``out/splits.json`` (speaker-disjoint train/dev/test) and the summary
    ``out/summary.json`` and ``out/summary.md``. Deterministic from the seed,
    whatever the number of jobs.

    Arguments
    ---------
    out : str
        Output folder.
    speakers : int
        Number of pseudo-speakers.
    utterances : int
        Sentences per speaker and emotion (the same sentences in every
        emotion).
    emotions : sequence of str
        Emotions to synthesize, from :data:`EMOTION_STYLES`; must include
        ``neu``.
    seed : int
        Random seed.
    jobs : int, optional
        Worker processes (default: all cores).

    Returns
    -------
    dict
        The summary (also written to ``summary.json``).
    """
    emotions = list(dict.fromkeys(emotions))
    unknown = [e for e in emotions if e not in EMOTION_STYLES]
    if unknown:
        raise SynthError(
            f"unknown emotion(s) {' '.join(unknown)}; available: "
            + " ".join(EMOTION_STYLES)
        )
    if "neu" not in emotions:
        raise SynthError("the emotions must include 'neu' (the reference)")
    if not 1 <= utterances <= len(SENTENCES):
        raise SynthError(f"--utterances must be in 1..{len(SENTENCES)}")
    if speakers < 3:
        raise SynthError("--speakers must be at least 3 (train, dev, test)")
    data_dir = espeak_data_dir()
    options = {
        "speakers": speakers,
        "utterances": utterances,
        "emotions": emotions,
        "seed": seed,
    }
    done = _finished_summary(out, options)
    if done is not None:
        return done
    spk_list = draw_speakers(speakers, seed)
    splits = split_speakers(spk_list, seed)
    jobs_list = [
        (spk, emo, k, seed, out)
        for spk in spk_list
        for emo in emotions
        for k in range(utterances)
    ]
    jobs = jobs or os.cpu_count() or 1
    os.makedirs(out, exist_ok=True)
    results = []
    ctx = get_context("fork" if sys.platform != "win32" else "spawn")
    # Each worker's espeak-ng folder lives under one scratch folder that this
    # process removes, however the workers end.
    with tempfile.TemporaryDirectory(prefix="espeak-") as scratch:
        init = (data_dir, scratch)
        with ctx.Pool(jobs, initializer=_init_worker, initargs=init) as pool:
            for result in tqdm(
                pool.imap(_synthesize, jobs_list, chunksize=16),
                total=len(jobs_list),
                desc="synthesizing",
                unit="utt",
                disable=None,
            ):
                results.append(result)
    rows = [r for r, _ in results]
    split_of = {s: name for name, ids in splits.items() for s in ids}
    for row in rows:
        row["split"] = split_of[row["spk_id"]]
    summary = summarize(rows, [s for _, s in results], splits)
    write_manifest(rows, os.path.join(out, "synth.csv"))
    with atomic_open(os.path.join(out, "splits.json")) as f:
        json.dump(splits, f, indent=1)
    with atomic_open(os.path.join(out, "speakers.json")) as f:
        json.dump(spk_list, f, indent=1)
    with atomic_open(os.path.join(out, "summary.json")) as f:
        json.dump(summary, f, indent=1)
    with atomic_open(os.path.join(out, "summary.md")) as f:
        f.write(summary_markdown(summary))
    # Written last: its presence means the corpus is complete.
    with atomic_open(os.path.join(out, "synth_options.json")) as f:
        json.dump(options, f)
    return summary


def _finished_summary(out, options):
    """The summary of a complete corpus made with ``options``, else None."""
    try:
        with open(os.path.join(out, "synth_options.json")) as f:
            if json.load(f) != options:
                return None
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def summarize(rows, stats, splits):
    """Corpus summary: sizes per split and emotion, F0 and rate per emotion.

    The per-speaker F0 shift is each speaker's mean F0 in an emotion over its
    neutral mean F0, averaged over speakers.
    """
    per_emo = defaultdict(list)
    per_spk_emo = defaultdict(list)
    for row, st in zip(rows, stats):
        per_emo[row["emo"]].append(st)
        per_spk_emo[row["spk_id"], row["emo"]].append(st["f0"])
    speakers = sorted({r["spk_id"] for r in rows})
    durations = np.array([s["duration"] for s in stats])
    summary = {
        "speakers": len(speakers),
        "utterances": len(rows),
        "hours": float(durations.sum() / 3600),
        "duration_min": float(durations.min()),
        "duration_max": float(durations.max()),
        "clipped": int(sum(s["peak"] >= 0.999 for s in stats)),
        "silent": int(sum(s["rms_db"] < -60 for s in stats)),
        "splits": {
            name: {
                "speakers": len(ids),
                "utterances": sum(r["spk_id"] in set(ids) for r in rows),
            }
            for name, ids in splits.items()
        },
        "emotions": {},
    }
    for emo, sts in per_emo.items():
        shifts = [
            np.nanmean(per_spk_emo[s, emo]) / np.nanmean(per_spk_emo[s, "neu"])
            for s in speakers
            if (s, emo) in per_spk_emo and (s, "neu") in per_spk_emo
        ]
        summary["emotions"][emo] = {
            "utterances": len(sts),
            "hours": float(sum(s["duration"] for s in sts) / 3600),
            "f0_mean_hz": float(np.nanmean([s["f0"] for s in sts])),
            "f0_vs_neutral": float(np.nanmean(shifts)),
            "words_per_s": float(np.mean([s["words_per_s"] for s in sts])),
            "rms_db": float(np.mean([s["rms_db"] for s in sts])),
        }
    return summary


def summary_markdown(summary):
    """The corpus summary as markdown tables.

    Example
    -------
    >>> s = {"speakers": 2, "utterances": 4, "hours": 0.01, "clipped": 0,
    ...      "silent": 0, "duration_min": 1.2, "duration_max": 2.5,
    ...      "splits": {"train": {"speakers": 2, "utterances": 4}},
    ...      "emotions": {"neu": {"utterances": 4, "hours": 0.01,
    ...      "f0_mean_hz": 150.0, "f0_vs_neutral": 1.0, "words_per_s": 3.0,
    ...      "rms_db": -23.0}}}
    >>> print(summary_markdown(s).splitlines()[0])
    Synthetic demo corpus: 2 speakers, 4 utterances, 0.01 h.
    """
    lines = [
        f"Synthetic demo corpus: {summary['speakers']} speakers, "
        f"{summary['utterances']} utterances, {summary['hours']:.2f} h.",
        f"Durations {summary['duration_min']:.2f}-"
        f"{summary['duration_max']:.2f} s, {summary['clipped']} clipped, "
        f"{summary['silent']} silent.",
        "",
        "| split | speakers | utterances |",
        "|---|---:|---:|",
    ]
    for name, s in summary["splits"].items():
        lines.append(f"| {name} | {s['speakers']} | {s['utterances']} |")
    lines += [
        "",
        "| emotion | utterances | hours | mean F0 (Hz) | F0 / neutral "
        "(per speaker) | words/s | RMS (dBFS) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for emo, s in summary["emotions"].items():
        lines.append(
            f"| {emo} | {s['utterances']} | {s['hours']:.2f} | "
            f"{s['f0_mean_hz']:.0f} | {s['f0_vs_neutral']:.2f} | "
            f"{s['words_per_s']:.2f} | {s['rms_db']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def prepare_synth(data_folder, save_folder, seed=0, max_per_condition=None):
    """Manifests, splits and trials for a synthesized corpus (``prepare``).

    Reads ``data_folder/synth.csv`` and ``splits.json`` written by
    :func:`synthesize_corpus`, checks them, and writes ``synth.csv``,
    ``synth_train.csv``, ``synth_dev.csv``, ``synth_test.csv`` and
    ``synth_trials.txt`` (from the test speakers, when there are two or
    more) into ``save_folder``, all together or, when anything fails, none
    of them. Skips the work when a run with the same options, from the same
    folder holding the same files, finished.

    Arguments
    ---------
    data_folder : str
        The corpus folder (``--out`` of the synthesizer).
    save_folder : str
        Where manifests and trials go.
    seed : int
        Seed of the trial list.
    max_per_condition : int, optional
        Cap on target (and non-target) trials per condition.
    """
    manifest = os.path.join(data_folder, "synth.csv")
    if not os.path.isfile(manifest):
        raise ManifestError(
            f"{data_folder} is not a synthesized corpus: no synth.csv there "
            "(create one with "
            "`python -m emotion_invariant.data.synth --out DIR`)"
        )
    settings = {
        "data_folder": os.path.realpath(data_folder),
        "seed": seed,
        "max_per_condition": max_per_condition,
    }
    if already_prepared("synth", save_folder, settings, data_folder):
        return
    content = corpus_content("synth", data_folder, save_folder)
    rows = read_manifest(manifest)
    splits_path = os.path.join(data_folder, "splits.json")
    splits = read_splits(splits_path, rows)
    for row in rows:
        row["wav"] = row["wav"].replace(
            "$data_root", os.path.abspath(data_folder)
        )
    parts = {
        name: [r for r in rows if r["spk_id"] in set(splits.get(name, ()))]
        for name in ("train", "dev", "test")
    }
    outputs = {"manifest": "synth.csv"}
    outputs.update({name: f"synth_{name}.csv" for name in parts})
    trials = None
    n_test = len(splits.get("test", ()))
    if n_test >= 2:
        try:
            trials = make_trials(parts["test"], seed, max_per_condition)
        except ManifestError as err:
            raise ManifestError(f"{splits_path}: test split: {err}") from err
        outputs["trials"] = "synth_trials.txt"
    else:
        logger.warning(
            "synth: %d test speaker(s) in %s: no trial list (verification "
            "trials need two test speakers; synthesize 4 speakers or more)",
            n_test,
            splits_path,
        )
    marker = "synth_prepare.json"
    owned = [*outputs.values(), "synth_trials.txt", marker]
    with staged_files(save_folder, marker, owned) as staging:
        write_manifest(rows, os.path.join(staging, outputs["manifest"]))
        for name, part in parts.items():
            write_manifest(part, os.path.join(staging, outputs[name]))
        if trials is not None:
            write_trials(trials, os.path.join(staging, outputs["trials"]))
        with atomic_open(os.path.join(staging, marker)) as f:
            json.dump(
                {"settings": settings, "content": content, "outputs": outputs},
                f,
                indent=1,
            )


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.data.synth",
        description="Synthesize the emotional demo corpus with espeak-ng.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--speakers", type=int, default=160)
    parser.add_argument(
        "--utterances", type=int, default=10, help="sentences per emotion"
    )
    parser.add_argument(
        "--emotions",
        nargs="+",
        default=list(DEFAULT_EMOTIONS),
        help=f"from: {' '.join(EMOTION_STYLES)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        summary = synthesize_corpus(
            args.out,
            args.speakers,
            args.utterances,
            args.emotions,
            args.seed,
            args.jobs,
        )
    except (SynthError, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(
            f"error: cannot write the corpus in {args.out}: "
            + os_error_message(err),
            file=sys.stderr,
        )
        return 2
    print(summary_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
