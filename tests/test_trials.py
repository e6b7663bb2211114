"""Emotional trial lists: balanced, never self-paired, deterministic."""

import random
from collections import Counter

import pytest

from emotion_invariant.corpora.synth import prepare_synth
from emotion_invariant.data import trials as trials_cli
from emotion_invariant.data.manifest import write_manifest
from emotion_invariant.data.trials import (
    condition_groups,
    make_trials,
    write_trials,
)

EMOS = ("neu", "hap", "ang", "sad")


def _rows(n_spk=5, n_utt=3, emotions=EMOS):
    return [
        {
            "ID": f"s{s}_{e}_{u}",
            "duration": 1.0,
            "wav": f"s{s}_{e}_{u}.wav",
            "spk_id": f"s{s}",
            "emo": e,
        }
        for s in range(n_spk)
        for e in emotions
        for u in range(n_utt)
    ]


def test_trials_are_correct_and_balanced():
    rows = _rows()
    info = {r["ID"]: r for r in rows}
    trials = make_trials(rows, seed=0)
    pairs = [(e, t) for _, e, t, _ in trials]
    assert len(pairs) == len(set(pairs))
    counts = Counter()
    for label, enrol, test, cond in trials:
        assert enrol != test
        assert label == int(info[enrol]["spk_id"] == info[test]["spk_id"])
        assert cond == f"{info[enrol]['emo']}-{info[test]['emo']}"
        for group in condition_groups(cond):
            counts[group, label] += 1
    groups = {g for g, _ in counts}
    assert groups == {
        "N-N",
        "N-E",
        "E-E same",
        "E-E cross",
        "neu-hap",
        "neu-ang",
        "neu-sad",
    }
    for group in groups:
        assert counts[group, 1] == counts[group, 0] > 0, group
    # Neutral-enrol trials against every emotion, with all same-speaker
    # targets taken when uncapped.
    assert counts["neu-ang", 1] == 5 * 3 * 3
    assert counts["N-N", 1] == 5 * 3 * 2


def test_deterministic_and_capped():
    rows = _rows()
    assert make_trials(rows, seed=1) == make_trials(rows, seed=1)
    assert make_trials(rows, seed=1) != make_trials(rows, seed=2)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    assert make_trials(shuffled, seed=1) == make_trials(rows, seed=1)
    capped = make_trials(rows, seed=1, max_per_condition=4)
    cells = Counter()
    for label, _, _, cond in capped:
        cells[tuple(condition_groups(cond)), label] += 1
    assert max(cells.values()) <= 4


def test_condition_groups():
    assert condition_groups("neu-neu") == ["N-N"]
    assert condition_groups("neu-sad") == ["N-E", "neu-sad"]
    assert condition_groups("ang-ang") == ["E-E same"]
    assert condition_groups("ang-hap") == ["E-E cross"]
    with pytest.raises(ValueError):
        condition_groups("neutral")


def test_too_small_for_trials():
    with pytest.raises(ValueError, match="no trials"):
        make_trials(_rows(n_spk=1, n_utt=1, emotions=("neu",)))


def test_cli(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    write_manifest(_rows(), str(manifest))
    out = tmp_path / "trials.txt"
    assert trials_cli.main([str(manifest), str(out), "--seed", "3"]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == len(make_trials(_rows(), seed=3))
    assert all(len(line.split()) == 4 for line in lines)
    assert "neu-ang" in capsys.readouterr().out


def test_cli_bad_manifest_leaves_nothing(tmp_path, capsys):
    manifest = tmp_path / "m.csv"
    manifest.write_text("ID,duration,wav,spk_id,emo\na,1,a.wav,s1,joy\n")
    out = tmp_path / "trials.txt"
    assert trials_cli.main([str(manifest), str(out)]) == 1
    assert "line 2 (ID a): unknown emotion" in capsys.readouterr().err
    assert not out.exists()


def test_write_trials_is_atomic(tmp_path):
    out = tmp_path / "t.txt"

    def boom():
        yield (1, "a", "b", "neu-neu")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_trials(boom(), str(out))
    assert list(tmp_path.iterdir()) == []


def test_prepare_synth(tiny_corpus, tmp_path):
    prepare_synth(str(tiny_corpus), str(tmp_path))
    from emotion_invariant.data.manifest import read_manifest

    parts = {
        n: read_manifest(str(tmp_path / f"synth_{n}.csv"))
        for n in ("train", "dev", "test")
    }
    speakers = {n: {r["spk_id"] for r in rows} for n, rows in parts.items()}
    assert not speakers["train"] & speakers["test"]
    assert not speakers["dev"] & (speakers["train"] | speakers["test"])
    test_ids = {r["ID"] for r in parts["test"]}
    for line in (tmp_path / "synth_trials.txt").read_text().splitlines():
        _, enrol, test, _ = line.split()
        assert enrol in test_ids and test in test_ids
    stamp = (tmp_path / "synth_train.csv").stat().st_mtime_ns
    prepare_synth(str(tiny_corpus), str(tmp_path))
    assert (tmp_path / "synth_train.csv").stat().st_mtime_ns == stamp
