"""Speaker-independent folds and splits: disjoint, balanced, deterministic."""

import logging
from collections import Counter

import pytest
from fake_corpora import EMODB_SPEAKERS, make_emodb

from emotion_invariant.corpora.emodb import prepare_emodb
from emotion_invariant.data.fold_manifests import fold_labels, write_fold
from emotion_invariant.data.folds import (
    fold_of_speakers,
    fold_split,
    group_by,
    speaker_folds,
    speaker_split,
)
from emotion_invariant.data.manifest import read_manifest, write_manifest
from emotion_invariant.data.trials import dev_trials, make_trials


def _genders(n_male, n_female, n_unknown=0):
    genders = {f"m{i:02d}": "M" for i in range(n_male)}
    genders.update({f"f{i:02d}": "F" for i in range(n_female)})
    genders.update({f"u{i:02d}": "" for i in range(n_unknown)})
    return genders


@pytest.mark.parametrize(
    "n_male, n_female, n_unknown",
    [(48, 43, 0), (5, 5, 0), (12, 12, 0), (7, 2, 3)],
)
def test_folds_cover_every_speaker_once_balanced(n_male, n_female, n_unknown):
    genders = _genders(n_male, n_female, n_unknown)
    folds = speaker_folds(genders, held_out=4, seed=3)
    n = len(genders)
    assert set(folds) == set(genders)
    n_folds = len(set(folds.values()))
    assert n_folds == max(2, round(n / 4))
    sizes = Counter(folds.values())
    assert max(sizes.values()) - min(sizes.values()) <= 1
    for gender in ("M", "F", ""):
        per_fold = Counter(folds[s] for s in genders if genders[s] == gender)
        counts = [per_fold.get(str(k), 0) for k in range(1, n_folds + 1)]
        assert max(counts) - min(counts) <= 1, (gender, counts)


def test_folds_are_deterministic_and_depend_on_seed():
    genders = _genders(10, 10)
    assert speaker_folds(genders, seed=1) == speaker_folds(
        dict(genders), seed=1
    )
    assert speaker_folds(genders, seed=1) != speaker_folds(genders, seed=2)


def test_folds_need_two_speakers_and_positive_size():
    with pytest.raises(ValueError, match="at least 2 speakers"):
        speaker_folds({"a": "M"})
    with pytest.raises(ValueError, match="held_out"):
        speaker_folds(_genders(2, 2), held_out=0)


@pytest.mark.parametrize(
    "n_male, n_female", [(48, 43), (5, 5), (12, 12), (3, 1)]
)
def test_split_disjoint_sizes_and_gender_balance(n_male, n_female):
    genders = _genders(n_male, n_female)
    split = speaker_split(genders, test=0.2, dev=0.1, seed=0)
    n = len(genders)
    counts = Counter(split.values())
    assert counts["test"] == max(2, round(0.2 * n))
    assert counts["dev"] == max(1, round(0.1 * n))
    assert counts["train"] == n - counts["test"] - counts["dev"]
    test_male = sum(genders[s] == "M" for s in split if split[s] == "test")
    # Proportional to the corpus, within one speaker.
    assert abs(test_male - counts["test"] * n_male / n) <= 1


def test_split_deterministic_and_refuses_too_few_speakers():
    genders = _genders(6, 6)
    assert speaker_split(genders, seed=5) == speaker_split(genders, seed=5)
    assert speaker_split(genders, seed=5) != speaker_split(genders, seed=6)
    with pytest.raises(ValueError, match="at least 4 speakers"):
        speaker_split(_genders(2, 1))
    with pytest.raises(ValueError, match="test fraction"):
        speaker_split(genders, test=1.5)


def test_group_by_sorts_numeric_labels_by_value():
    assignment = {f"s{i}": str(i % 11 + 1) for i in range(22)}
    groups = group_by(assignment)
    assert list(groups) == [str(k) for k in range(1, 12)]
    assert groups["11"] == ["s10", "s21"]


def _fold_speakers(paths):
    """Each of a written fold's manifests -> its speakers."""
    return {
        name: {row["spk_id"] for row in read_manifest(paths[name])}
        for name in ("train", "dev", "test")
    }


def _trials(path):
    """A written trial list as :func:`make_trials` returns it."""
    with open(path) as f:
        return [
            (int(label), enrol, test, cond)
            for label, enrol, test, cond in map(str.split, f)
        ]


def _labels(trials):
    return Counter(label for label, *_ in trials)


@pytest.fixture(scope="module")
def emodb_manifest(tmp_path_factory):
    """EmoDB's 10 speakers, which its preparer deals into 2 folds of 5."""
    root = tmp_path_factory.mktemp("emodb")
    make_emodb(str(root / "corpus"))
    return prepare_emodb(str(root / "corpus"), str(root / "out"))["manifest"]


def test_ten_speakers_in_two_folds_get_two_dev_speakers(
    emodb_manifest, tmp_path, caplog
):
    """One dev speaker gives no non-target dev trial, so the speaker
    fine-tuning of a fold could not select checkpoints at all."""
    assert fold_labels(emodb_manifest) == ["1", "2"]
    for fold in ("1", "2"):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            paths = write_fold(emodb_manifest, fold, str(tmp_path / fold))
        speakers = _fold_speakers(paths)
        assert len(speakers["test"]) == 5
        assert len(speakers["dev"]) == 2
        assert len(speakers["train"]) == 3
        assert not speakers["test"] & (speakers["train"] | speakers["dev"])
        assert not speakers["dev"] & speakers["train"]
        assert set().union(*speakers.values()) == set(EMODB_SPEAKERS)
        labels = _labels(dev_trials(read_manifest(paths["dev"])))
        assert labels[0] > 0 and labels[1] > 0
        assert _labels(_trials(paths["trials"]))[0] > 0
        (said,) = [r.getMessage() for r in caplog.records]
        assert f"fold {fold}" in said
        assert "dev speakers " + ", ".join(sorted(speakers["dev"])) in said
        assert "non-target" in said


def _rows(folds, emotions=("neu", "ang", "sad"), per_emotion=3):
    """A manifest's rows: speaker ``s<k>`` in fold ``folds[k]``."""
    return [
        {
            "ID": f"s{k}_{emo}_{i}",
            "duration": 1.0,
            "wav": f"s{k}_{emo}_{i}.wav",
            "spk_id": f"s{k}",
            "emo": emo,
            "gender": "MF"[k % 2],
            "fold": fold,
        }
        for k, fold in enumerate(folds)
        for emo in emotions
        for i in range(per_emotion)
    ]


TWO = Counter(neu=1, ang=1)
FOUR = Counter(neu=2, ang=1, sad=1)


@pytest.mark.parametrize(
    "folds, fraction, held",
    [("111222", 0.15, TWO), ("1122", 0.15, TWO), ("111222", 0.5, FOUR)],
)
def test_too_few_other_speakers_hold_out_utterances(
    folds, fraction, held, tmp_path, caplog
):
    """Two or three speakers besides the fold's cannot give two dev and
    two training speakers: dev is then held-out utterances of every
    training speaker (``held``: the emotions of each one's held-out
    utterances, two of nine, or four at a dev_fraction of 0.5)."""
    source = str(tmp_path / "all.csv")
    write_manifest(_rows(folds), source)
    with caplog.at_level(logging.WARNING):
        paths = write_fold(
            source, "1", str(tmp_path / "fold"), dev_fraction=fraction
        )
    speakers = _fold_speakers(paths)
    others = {f"s{k}" for k, fold in enumerate(folds) if fold != "1"}
    assert speakers["train"] == speakers["dev"] == others
    assert not speakers["test"] & others
    train = {row["ID"] for row in read_manifest(paths["train"])}
    dev = {row["ID"] for row in read_manifest(paths["dev"])}
    assert not train & dev
    assert train | dev == {r["ID"] for r in _rows(folds) if r["fold"] != "1"}
    assert len(dev) == sum(held.values()) * len(others)
    for spk in others:
        emotions = [
            row["emo"]
            for row in read_manifest(paths["dev"])
            if row["spk_id"] == spk
        ]
        # dealt over the emotions in turn, neutral first
        assert Counter(emotions) == held
    labels = _labels(dev_trials(read_manifest(paths["dev"])))
    assert labels[0] > 0 and labels[1] > 0
    (said,) = [r.getMessage() for r in caplog.records]
    assert "held-out utterances of the training speakers" in said
    assert ", ".join(sorted(others)) in said


def test_one_other_speaker_is_refused(tmp_path):
    source = str(tmp_path / "all.csv")
    write_manifest(_rows("1112"), source)
    with pytest.raises(ValueError, match="fold '1' leaves 1 speaker"):
        write_fold(source, "1", str(tmp_path / "fold"))


@pytest.mark.parametrize("n_speakers, n_folds", [(24, 4), (12, 3), (6, 3)])
def test_enough_dev_speakers_keep_the_folds_split(
    n_speakers, n_folds, tmp_path
):
    """Where the dev fraction already gives two dev speakers (24 speakers
    in 4 folds at 0.15; 12 in 3 and 6 in 3 at 0.5), a fold's files are
    the emotion recipe's split and the trials of its test speakers, as
    before."""
    folds = [str(k % n_folds + 1) for k in range(n_speakers)]
    rows = _rows(folds)
    source = str(tmp_path / "all.csv")
    write_manifest(rows, source)
    fraction = 0.15 if n_speakers == 24 else 0.5
    paths = write_fold(source, "2", str(tmp_path / "fold"), 5, 7, fraction)
    parts = fold_split(
        read_manifest(source),
        fold_of_speakers(read_manifest(source)),
        "2",
        fraction,
        7,
    )
    assert len({row["spk_id"] for row in parts["dev"]}) >= 2
    for name in ("train", "dev", "test"):
        assert read_manifest(paths[name]) == parts[name]
    assert _trials(paths["trials"]) == make_trials(parts["test"], 7)


def test_a_dev_fraction_leaving_one_to_train_still_trains_two(tmp_path, caplog):
    source = str(tmp_path / "all.csv")
    write_manifest(_rows("11112222"), source)
    with caplog.at_level(logging.WARNING):
        paths = write_fold(source, "1", str(tmp_path / "f"), dev_fraction=0.8)
    speakers = _fold_speakers(paths)
    assert len(speakers["dev"]) == len(speakers["train"]) == 2
    (said,) = [r.getMessage() for r in caplog.records]
    assert "gives 3 dev speaker(s) and leaves 1 to train" in said
