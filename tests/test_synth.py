"""The demo-corpus synthesizer: speech-like, emotional, deterministic."""

import hashlib
import json
import os
import tempfile
from collections import defaultdict

import numpy as np
import pytest
import soundfile

from emotion_invariant.corpora import synth
from emotion_invariant.corpora.synth import (
    SynthError,
    draw_speakers,
    estimate_f0,
    synthesize_corpus,
    voices,
)
from emotion_invariant.data.manifest import read_manifest, read_splits


def _digest(folder):
    """Hash of every wav and of the manifest, by relative path."""
    out = {}
    for root, _, files in os.walk(folder):
        for name in files:
            if (
                name.endswith((".wav", ".csv", ".json"))
                and "options" not in name
            ):
                path = os.path.join(root, name)
                with open(path, "rb") as f:
                    out[os.path.relpath(path, folder)] = hashlib.md5(
                        f.read()
                    ).hexdigest()
    return out


def test_manifest_and_splits(tiny_corpus):
    rows = read_manifest(str(tiny_corpus / "synth.csv"), check_audio=True)
    assert len(rows) == 6 * 4 * 3
    splits = read_splits(str(tiny_corpus / "splits.json"), rows)
    assert set(splits) == {"train", "dev", "test"}
    assert sum(len(v) for v in splits.values()) == 6
    for row in rows:
        assert row["split"] in splits
        assert row["spk_id"] in splits[row["split"]]
    # Parallel text: every speaker says the same sentences in every emotion.
    texts = defaultdict(set)
    for row in rows:
        texts[row["spk_id"], row["emo"]].add(row["text"])
    assert len({frozenset(t) for t in texts.values()}) == 1


def test_audio_is_speech_like(tiny_corpus):
    rows = read_manifest(str(tiny_corpus / "synth.csv"))
    for row in rows:
        path = row["wav"].replace("$data_root", str(tiny_corpus))
        audio, sr = soundfile.read(path)
        assert sr == 16000 and audio.ndim == 1
        duration = len(audio) / sr
        assert 1.0 <= duration <= 4.0, (row["ID"], duration)
        assert abs(duration - float(row["duration"])) < 1e-3
        rms_db = 20 * np.log10(np.sqrt(np.mean(audio**2)))
        assert rms_db > -45, (row["ID"], rms_db)
        assert np.max(np.abs(audio)) < 0.99, row["ID"]


def test_emotions_move_speaker_cues(tiny_corpus):
    """Aroused emotions raise F0 and speed, sadness lowers them, per speaker."""
    rows = read_manifest(str(tiny_corpus / "synth.csv"))
    f0 = defaultdict(list)
    rate = defaultdict(list)
    for row in rows:
        audio, _ = soundfile.read(
            row["wav"].replace("$data_root", str(tiny_corpus))
        )
        f0[row["spk_id"], row["emo"]].append(estimate_f0(audio))
        rate[row["spk_id"], row["emo"]].append(
            len(row["text"].split()) / float(row["duration"])
        )
    speakers = sorted({r["spk_id"] for r in rows})
    for spk in speakers:
        neutral = np.nanmean(f0[spk, "neu"])
        assert np.nanmean(f0[spk, "sad"]) < 0.95 * neutral, spk
        assert np.nanmean(f0[spk, "ang"]) > 1.05 * neutral, spk
        assert np.mean(rate[spk, "sad"]) < np.mean(rate[spk, "neu"])
        assert np.mean(rate[spk, "ang"]) > np.mean(rate[spk, "neu"])
    summary = json.loads((tiny_corpus / "summary.json").read_text())
    assert summary["emotions"]["sad"]["f0_vs_neutral"] < 1.0
    assert summary["emotions"]["hap"]["f0_vs_neutral"] > 1.0
    assert summary["clipped"] == 0 and summary["silent"] == 0


def test_deterministic_whatever_the_jobs(tmp_path):
    kwargs = {"speakers": 3, "utterances": 1, "emotions": ("neu", "ang")}
    synthesize_corpus(str(tmp_path / "a"), seed=3, jobs=1, **kwargs)
    synthesize_corpus(str(tmp_path / "b"), seed=3, jobs=2, **kwargs)
    synthesize_corpus(str(tmp_path / "c"), seed=4, jobs=2, **kwargs)
    a, b, c = (_digest(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a != c


def test_rerun_is_skipped(tmp_path):
    kwargs = {"speakers": 3, "utterances": 1, "emotions": ("neu", "sad")}
    synthesize_corpus(str(tmp_path), seed=0, jobs=1, **kwargs)
    wav = next((tmp_path / "wavs").rglob("*.wav"))
    stamp = wav.stat().st_mtime_ns
    synthesize_corpus(str(tmp_path), seed=0, jobs=1, **kwargs)
    assert wav.stat().st_mtime_ns == stamp


def test_speakers_do_not_collide():
    speakers = draw_speakers(60, seed=1, min_distance=0.35)
    for i, a in enumerate(speakers):
        for b in speakers[:i]:
            if a["gender"] == b["gender"] and a["base"] == b["base"]:
                gap = voices._voice_vector(a) - voices._voice_vector(b)
                assert np.linalg.norm(gap) >= 0.35
    assert {s["gender"] for s in speakers} == {"m", "f"}
    assert len({s["base"] for s in speakers}) == len(synth.BASE_VOICES)


def test_missing_espeak_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SynthError, match="apt-get install espeak-ng"):
        synthesize_corpus(str(tmp_path / "x"), speakers=3, utterances=1)
    assert synth.main(["--out", str(tmp_path / "x"), "--speakers", "3"]) == 2
    assert "espeak-ng is not installed" in capsys.readouterr().err
    assert not (tmp_path / "x" / "synth.csv").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--speakers", "2"], "at least 3"),
        (["--emotions", "neu", "joy"], "unknown emotion"),
        (["--emotions", "ang", "sad"], "must include 'neu'"),
        (["--utterances", "0"], "--utterances"),
    ],
)
def test_bad_arguments(tmp_path, capsys, args, message):
    assert synth.main(["--out", str(tmp_path)] + args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "synth.csv").exists()


def test_bad_jobs_argument(tmp_path):
    with pytest.raises(SystemExit) as err:
        synth.main(["--out", str(tmp_path), "--jobs", "0"])
    assert err.value.code == 2


def test_f0_estimator_on_harmonic_signal():
    t = np.arange(16000) / 16000
    for f0 in (90.0, 150.0, 230.0):
        x = sum(np.sin(2 * np.pi * f0 * k * t) / k for k in range(1, 6))
        assert abs(estimate_f0(x) - f0) < 2.0


def test_leaves_no_scratch_folders(tmp_path):
    """The workers' espeak-ng folders are removed when synthesis ends."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    tempfile.tempdir = str(scratch)  # restored by the root conftest
    kwargs = {"speakers": 3, "utterances": 1, "emotions": ("neu", "hap")}
    synthesize_corpus(str(tmp_path / "corpus"), seed=0, jobs=2, **kwargs)
    assert (tmp_path / "corpus" / "synth.csv").exists()
    assert list(scratch.iterdir()) == []
