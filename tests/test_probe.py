"""The speaker-leakage probe on embeddings with and without speakers."""

import numpy as np
import pytest
import torch

from emotion_invariant.emotion.probe import (
    ProbeError,
    speaker_probe,
    split_per_speaker,
)

N_SPEAKERS, PER_SPEAKER, DIM = 8, 40, 16


def _speakers():
    return [f"spk{i}" for i in range(N_SPEAKERS) for _ in range(PER_SPEAKER)]


def _emotion_clusters(rng):
    """Embeddings that hold the emotion strongly and the speaker not at all."""
    emotions = rng.integers(0, 4, N_SPEAKERS * PER_SPEAKER)
    centres = rng.normal(scale=4.0, size=(4, DIM))
    return centres[emotions] + rng.normal(size=(emotions.size, DIM))


def test_recovers_speakers_from_speaker_clusters():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=1.5, size=(N_SPEAKERS, DIM))
    speakers = _speakers()
    index = np.repeat(np.arange(N_SPEAKERS), PER_SPEAKER)
    embeddings = centres[index] + rng.normal(size=(index.size, DIM))
    result = speaker_probe(torch.from_numpy(embeddings).float(), speakers)
    assert result["accuracy"] > 0.9
    assert result["chance_uniform"] == pytest.approx(1 / N_SPEAKERS)
    assert result["chance_majority"] == pytest.approx(1 / N_SPEAKERS)
    assert result["n_speakers"] == N_SPEAKERS
    assert result["n_train"] + result["n_test"] == len(speakers)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_near_chance_without_speaker_information(seed):
    rng = np.random.default_rng(seed)
    result = speaker_probe(_emotion_clusters(rng), _speakers(), seed=seed)
    # 96 held-out utterances: chance 12.5% with a standard error of 3.4%.
    assert result["accuracy"] < result["chance_uniform"] + 0.12


def test_leakage_ranks_partly_invariant_embeddings_in_between():
    rng = np.random.default_rng(3)
    speakers = _speakers()
    index = np.repeat(np.arange(N_SPEAKERS), PER_SPEAKER)
    centres = rng.normal(size=(N_SPEAKERS, DIM))
    base = _emotion_clusters(rng)
    accuracies = [
        speaker_probe(base + scale * centres[index], speakers)["accuracy"]
        for scale in (0.0, 0.7, 3.0)
    ]
    assert accuracies[0] < accuracies[1] < accuracies[2]


def test_split_per_speaker_covers_every_speaker_on_both_sides():
    speakers = ["a"] * 10 + ["b"] * 3 + ["c"] * 2 + ["d"]
    train, test, skipped = split_per_speaker(speakers, held_out=0.3, seed=5)
    assert skipped == ["d"]
    assert not set(train) & set(test)
    assert sorted([*train, *test]) == list(range(15))
    labels = np.array(speakers)
    for spk, n_test in (("a", 3), ("b", 1), ("c", 1)):
        assert (labels[test] == spk).sum() == n_test
        assert (labels[train] == spk).sum() >= 1
    again = split_per_speaker(speakers, held_out=0.3, seed=5)
    np.testing.assert_array_equal(again[1], test)


def test_probe_is_deterministic():
    rng = np.random.default_rng(4)
    emb = _emotion_clusters(rng)
    assert speaker_probe(emb, _speakers()) == speaker_probe(emb, _speakers())


@pytest.mark.parametrize(
    "embeddings, speakers, message",
    [
        (np.zeros((4, 2)), ["a", "a", "b"], "4 embeddings but 3 speaker"),
        (np.zeros(4), ["a", "a", "b", "b"], r"must be \[N, D\]"),
        (np.zeros((4, 2)), ["a", "a", "a", "a"], "at least 2 speakers"),
        (np.zeros((4, 2)), ["a", "b", "c", "d"], "at least 2 speakers"),
        (
            np.array([[0, 0], [1, np.nan], [0, 1], [1, 1]]),
            ["a", "a", "b", "b"],
            "embedding 1 has a NaN",
        ),
    ],
)
def test_bad_input_fails_clearly(embeddings, speakers, message):
    with pytest.raises(ProbeError, match=message):
        speaker_probe(embeddings, speakers)
    with pytest.raises(ProbeError, match="held_out"):
        split_per_speaker(["a", "a"], held_out=1.0)
