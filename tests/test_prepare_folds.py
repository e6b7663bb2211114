"""Speaker-independent folds and splits: disjoint, balanced, deterministic."""

from collections import Counter

import pytest

from emotion_invariant.data.folds import group_by, speaker_folds, speaker_split


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
