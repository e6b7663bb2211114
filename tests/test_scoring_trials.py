"""Trial lists and score files: parsing, validation, writing."""

import numpy as np
import pytest

from emotion_invariant.data.manifest import ManifestError
from emotion_invariant.scoring import (
    Trials,
    drop_missing,
    read_trials,
    trial_list,
    write_scores,
)


def write(tmp_path, text, name="trials.txt"):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_read_trials_codes_and_records(tmp_path):
    text = "1 a b neu-ang\n\n0 a c neu-neu\n1 c b ang-ang\n"
    trials = read_trials(write(tmp_path, text))
    assert list(trials.records()) == [
        (1, "a", "b", "neu-ang"),
        (0, "a", "c", "neu-neu"),
        (1, "c", "b", "ang-ang"),
    ]
    assert trials.names == ["a", "c", "b"]  # enrol column first
    assert trials.labels.dtype == bool and trials.enrol.dtype == np.int64


def test_read_trials_in_blocks_matches_one_block(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    lines = [
        f"{rng.integers(2)} u{rng.integers(50)} u{rng.integers(50)}\n"
        for _ in range(500)
    ]
    path = write(tmp_path, "".join(lines))
    whole = list(read_trials(path).records())
    monkeypatch.setattr(trial_list, "_BLOCK_BYTES", 64)
    assert list(read_trials(path).records()) == whole
    assert whole[7] == tuple(
        int(x) if i == 0 else x for i, x in enumerate(lines[7].split())
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "empty"),
        ("\n\n", "empty"),
        ("1 a b\n0 a\n", "line 2: expected 3 or 4 fields"),
        ("\n1 a b x\n\n0 a c\n", "line 4: 3 fields, but line 2 has 4"),
        ("1 a b c d\n", "line 1: expected 3 or 4 fields"),
        ("1 a b\n2 a c\n", "line 2: label '2' is not 0 or 1"),
        ("1 a b\n\ntrue a c\n", "line 3: label 'true' is not 0 or 1"),
    ],
)
def test_bad_trial_lists_name_the_line(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ManifestError, match=message) as err:
        read_trials(path)
    assert path in str(err.value)


def test_bad_label_found_in_later_block(tmp_path, monkeypatch):
    path = write(tmp_path, "1 a b\n" * 50 + "x a b\n")
    monkeypatch.setattr(trial_list, "_BLOCK_BYTES", 32)
    with pytest.raises(ManifestError, match="line 51: label 'x'"):
        read_trials(path)


def test_missing_trial_file():
    with pytest.raises(ManifestError, match="not found"):
        read_trials("/nonexistent/trials.txt")


def test_from_records_validates():
    with pytest.raises(ManifestError, match="trial 2: expected the same"):
        Trials.from_records([(1, "a", "b"), (0, "a", "b", "neu-neu")])
    with pytest.raises(ManifestError, match="empty"):
        Trials.from_records([])
    trials = Trials.from_records([(True, "a", "b"), ("0", "b", "a")])
    assert trials.labels.tolist() == [True, False]


def test_drop_missing_and_subset_compact_the_vocabulary():
    trials = Trials.from_records(
        [
            (1, "a", "b", "neu-neu"),
            (0, "a", "x", "neu-ang"),
            (0, "b", "a", "neu-neu"),
        ]
    )
    kept, dropped = drop_missing(trials, ["b", "a"])
    assert dropped == 1
    assert kept.names == ["a", "b"]
    assert list(kept.records()) == [
        (1, "a", "b", "neu-neu"),
        (0, "b", "a", "neu-neu"),
    ]


def test_write_scores_round_trips_float32(tmp_path):
    trials = Trials.from_records([(1, "a", "b"), (0, "a", "c")])
    scores = np.array([0.123456789, -1e-5], dtype=np.float32)
    out = tmp_path / "scores.txt"
    write_scores(str(out), trials, scores)
    lines = [line.split() for line in out.read_text().splitlines()]
    assert [line[:3] for line in lines] == [["a", "b", "1"], ["a", "c", "0"]]
    assert np.array(
        [float(line[3]) for line in lines], dtype=np.float32
    ).tolist() == (scores.tolist())
    with pytest.raises(ValueError, match="1 scores for 2 trials"):
        write_scores(str(tmp_path / "other.txt"), trials, scores[:1])
    assert not (tmp_path / "other.txt").exists()
