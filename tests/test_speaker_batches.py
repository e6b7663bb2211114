"""P x K batches: every utterance once per epoch, speakers together."""

import itertools
from collections import Counter

import pytest

from emotion_invariant.data.speaker_batches import SpeakerBatchSampler


def test_batches_cover_every_utterance_once_per_epoch():
    speakers = ["a"] * 7 + ["b"] * 3 + ["c"] * 5
    groups = [f"{s}{i % 3}" for s, i in zip(speakers, itertools.count())]
    sampler = SpeakerBatchSampler(speakers, 2, 2, groups=groups, seed=4)
    epochs = []
    for epoch in (1, 2, 1):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler)
        assert sorted(i for b in batches for i in b) == list(range(15))
        epochs.append(batches)
    assert epochs[0] == epochs[2] and epochs[0] != epochs[1]
    # One chunk a batch: a speaker's utterances take its groups in turn.
    single = SpeakerBatchSampler(speakers, 3, 1, groups=groups, seed=4)
    for batch in single:
        assert len({speakers[i] for i in batch}) == 1
        assert all(groups[i] != groups[j] for i, j in zip(batch, batch[1:]))


def test_p_by_k_batches_without_groups():
    """Each full batch: P distinct speakers with K utterances each."""
    speakers = [f"s{k}" for k in range(12) for _ in range(6)]
    sampler = SpeakerBatchSampler(speakers, 2, 4, seed=1)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 12 * 3 // 4
    for batch in batches:
        counts = Counter(speakers[i] for i in batch)
        assert len(counts) == 4 and set(counts.values()) == {2}
    assert sorted(i for b in batches for i in b) == list(range(72))
    # A shuffle, not the corpus order.
    assert [i for b in batches for i in b] != list(range(72))


def test_same_seed_same_batches_other_seed_other_batches():
    speakers = [f"s{k % 5}" for k in range(40)]
    a = list(SpeakerBatchSampler(speakers, 2, 3, seed=0))
    b = list(SpeakerBatchSampler(speakers, 2, 3, seed=0))
    c = list(SpeakerBatchSampler(speakers, 2, 3, seed=1))
    assert a == b and a != c


@pytest.mark.parametrize(
    "args, match",
    [
        ((["a", "b"], 0, 1), "must be >= 1"),
        ((["a", "b"], 1, 0), "must be >= 1"),
    ],
)
def test_bad_settings(args, match):
    with pytest.raises(ValueError, match=match):
        SpeakerBatchSampler(*args)


def test_groups_must_match_speakers():
    with pytest.raises(ValueError, match="2 speakers for 1 groups"):
        SpeakerBatchSampler(["a", "b"], 1, 1, groups=["g"])
