"""Per-speaker centring, and the linear probe that uses it."""

import os
import subprocess
import sys

import numpy as np
import pytest

from emotion_invariant.data.manifest import write_manifest
from emotion_invariant.emotion.speaker_norm import (
    SpeakerNormError,
    reference_rows,
    speaker_centre,
)
from emotion_invariant.scoring.embeddings import save_embeddings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROBE = os.path.join(ROOT, "scripts", "emotion_linear_probe.py")
EMOTIONS = ("ang", "hap", "neu", "sad")


def test_centre_matches_a_loop_over_speakers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 5))
    speakers = [f"s{i % 3}" for i in range(40)]
    reference = rng.random(40) < 0.5
    expected = x.copy()
    for spk in set(speakers):
        rows = [i for i, s in enumerate(speakers) if s == spk]
        ref = [i for i in rows if reference[i]]
        mean = x[ref].mean(axis=0)
        for i in rows:
            expected[i] = x[i] - mean
    got = speaker_centre(x, speakers, reference)
    np.testing.assert_allclose(got, expected, atol=1e-12)
    # with every row as reference, each speaker's rows average to zero
    full = speaker_centre(x, speakers)
    for spk in set(speakers):
        rows = [i for i, s in enumerate(speakers) if s == spk]
        np.testing.assert_allclose(full[rows].mean(axis=0), 0, atol=1e-12)


def test_centre_refuses_what_does_not_fit():
    x = np.zeros((4, 2))
    with pytest.raises(SpeakerNormError, match="no reference utterance.*'b'"):
        speaker_centre(x, "aabb", [True, False, False, False])
    with pytest.raises(SpeakerNormError, match="4 embeddings but 3"):
        speaker_centre(x, "abb")
    with pytest.raises(SpeakerNormError, match="one per row"):
        speaker_centre(x, "aabb", [1, 0, 1, 0])
    with pytest.raises(SpeakerNormError, match=r"\[N, D\]"):
        speaker_centre(np.zeros(4), "aabb")


def test_reference_rows_by_emotion_and_count():
    rows = [
        {"spk_id": spk, "emo": emo}
        for spk in ("a", "b", "c")
        for emo in EMOTIONS * 5
    ]
    neutral = reference_rows(rows, emotion="neu")
    assert all(rows[i]["emo"] == "neu" for i in np.flatnonzero(neutral))
    assert neutral.sum() == 15
    drawn = reference_rows(rows, per_speaker=3, seed=1)
    for spk in "abc":
        assert (
            sum(drawn[i] for i, r in enumerate(rows) if r["spk_id"] == spk) == 3
        )
    assert (reference_rows(rows, per_speaker=3, seed=1) == drawn).all()
    assert (reference_rows(rows, per_speaker=3, seed=2) != drawn).any()
    both = reference_rows(rows, emotion="sad", per_speaker=2)
    assert both.sum() == 6 and (neutral & both).sum() == 0
    with pytest.raises(SpeakerNormError, match="per_speaker"):
        reference_rows(rows, per_speaker=0)


def _corpus(tmp_path, n_train=8, n_test=4, per_emotion=6, seed=0):
    """Embeddings where the speaker offset swamps a small emotion offset."""
    rng = np.random.default_rng(seed)
    direction = {e: rng.normal(size=16) for e in EMOTIONS}
    ids, matrix, parts = [], [], {"train": [], "test": []}
    for s in range(n_train + n_test):
        spk = f"spk{s}"
        offset = 8.0 * rng.normal(size=16)
        for emo in EMOTIONS:
            for k in range(per_emotion):
                uid = f"{spk}_{emo}_{k}"
                ids.append(uid)
                matrix.append(offset + direction[emo] + rng.normal(size=16))
                part = "train" if s < n_train else "test"
                parts[part].append(
                    {
                        "ID": uid,
                        "duration": 1.0,
                        "wav": f"{uid}.wav",
                        "spk_id": spk,
                        "emo": emo,
                    }
                )
    folder = tmp_path / "fold_1"
    folder.mkdir()
    for part, rows in parts.items():
        write_manifest(rows, str(folder / f"{part}.csv"))
    path = str(tmp_path / "embeddings.npz")
    save_embeddings(path, ids, np.stack(matrix))
    return path, str(folder)


def _ua(out):
    line = [x for x in out.splitlines() if x.startswith("ua:")][0]
    return float(line.split()[1])


def _probe(*args):
    return subprocess.run(
        [sys.executable, PROBE, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )


def test_centring_recovers_emotion_from_unseen_speakers(tmp_path):
    embeddings, fold = _corpus(tmp_path)
    plain = _probe("--embeddings", embeddings, "--folds", fold)
    centred = _probe("--embeddings", embeddings, "--folds", fold, "--centre")
    neutral = _probe(
        "--embeddings",
        embeddings,
        "--folds",
        fold,
        "--centre",
        "--centre_emotion",
        "neu",
    )
    assert plain.returncode == centred.returncode == neutral.returncode == 0
    # the speaker offsets hide the emotion from a probe trained on other
    # speakers; their means over every emotion remove them exactly
    assert _ua(centred.stdout) >= 90.0
    assert _ua(plain.stdout) < _ua(centred.stdout) - 20
    # a mean over one emotion (here the same offset for every speaker)
    # still removes each speaker's own offset
    assert _ua(plain.stdout) < _ua(neutral.stdout) - 20


def test_probe_options_need_centre(tmp_path):
    embeddings, fold = _corpus(tmp_path, n_train=2, n_test=1, per_emotion=2)
    result = _probe(
        "--embeddings", embeddings, "--folds", fold, "--centre_emotion", "neu"
    )
    assert result.returncode == 2
    assert "need --centre" in result.stderr


def test_centred_backend_beats_the_same_classifier_uncentred():
    from sklearn.linear_model import LogisticRegression

    from emotion_invariant.emotion.report import centred_backend

    rng = np.random.default_rng(3)
    direction = rng.normal(size=(len(EMOTIONS), 12))

    def side(n_speakers):
        spk = np.repeat(np.arange(n_speakers), 8 * len(EMOTIONS))
        emo = np.tile(np.arange(len(EMOTIONS)), 8 * n_speakers)
        offsets = 8.0 * rng.normal(size=(n_speakers, 12))
        x = offsets[spk] + direction[emo] + rng.normal(size=(len(spk), 12))
        return x, [f"s{s}" for s in spk], emo

    train, test = side(8), side(4)
    test = (test[0], [f"t{s}" for s in test[1]], test[2])
    centred = centred_backend(train, test, list(EMOTIONS))
    plain = LogisticRegression(max_iter=2000).fit(train[0], train[2])
    plain_ua = np.mean(
        [
            (plain.predict(test[0])[test[2] == k] == k).mean()
            for k in range(len(EMOTIONS))
        ]
    )
    assert centred["ua"] >= 0.9
    assert plain_ua < centred["ua"] - 0.2
    assert centred["n"] == len(test[2])
