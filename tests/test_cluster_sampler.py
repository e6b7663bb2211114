"""Tests for the cluster-guided positive/negative sampler."""

import random

import numpy as np
import pytest

from emotion_invariant.data.cluster_sampler import ClusterPairSampler


def corpus(seed=0):
    """Three speakers with 1-3 clusters of varied sizes, shuffled order."""
    sizes = {"a": [4, 3, 1], "b": [5, 2], "c": [3]}
    clusters, speakers = [], []
    for spk, counts in sizes.items():
        for c, n in enumerate(counts):
            clusters += [f"{spk}:{c}"] * n
            speakers += [spk] * n
    order = np.random.default_rng(seed).permutation(len(clusters))
    return [clusters[i] for i in order], [speakers[i] for i in order]


CLUSTERS, SPEAKERS = corpus()
N = len(CLUSTERS)


def naive_negatives(i, cross):
    return {
        j
        for j in range(N)
        if CLUSTERS[j] != CLUSTERS[i] and (cross or SPEAKERS[j] == SPEAKERS[i])
    }


def test_positives_share_speaker_and_cluster():
    sampler = ClusterPairSampler(CLUSTERS, SPEAKERS, seed=1)
    rng = random.Random(0)
    for i in range(N):
        mates = {j for j in range(N) if CLUSTERS[j] == CLUSTERS[i]} - {i}
        drawn = {sampler.positive(i, rng) for _ in range(60)}
        if mates:
            assert drawn == mates  # every mate, never the anchor
        else:
            assert drawn == {i}  # a singleton cluster has only itself


@pytest.mark.parametrize("cross", [False, True])
def test_negatives_other_clusters(cross):
    sampler = ClusterPairSampler(
        CLUSTERS, SPEAKERS, seed=2, cross_speaker_negatives=cross
    )
    rng = np.random.default_rng(0)
    for i in range(N):
        pool = naive_negatives(i, cross)
        for n in (0, 1, 3, N):
            drawn = sampler.negatives(i, n, rng)
            assert len(drawn) == len(set(drawn)) == min(n, len(pool))
            assert set(drawn) <= pool
        # asking for everything returns exactly the pool
        assert set(sampler.negatives(i, N, rng)) == pool
        if len(pool) > 1:
            seen = set()
            for _ in range(80):
                seen.update(sampler.negatives(i, 1, rng))
            assert seen == pool  # uniform enough to reach every candidate


def test_negatives_within_speaker_only_by_default():
    sampler = ClusterPairSampler(CLUSTERS, SPEAKERS)
    with_negatives = 0
    for i in range(N):
        expected = {
            j
            for j in range(N)
            if SPEAKERS[j] == SPEAKERS[i] and CLUSTERS[j] != CLUSTERS[i]
        }
        assert set(sampler.negatives(i, N)) == expected, i
        with_negatives += bool(expected)
    assert with_negatives > 0
    lonely = CLUSTERS.index("c:0")  # speaker c has one cluster
    assert sampler.negatives(lonely, 5) == []


def test_random_same_speaker_mode():
    sampler = ClusterPairSampler(
        CLUSTERS, SPEAKERS, seed=0, mode="random_same_speaker"
    )
    for i in range(N):
        same = {j for j in range(N) if SPEAKERS[j] == SPEAKERS[i]} - {i}
        drawn = {sampler.positive(i) for _ in range(80)}
        assert drawn == same  # other clusters of the speaker included
        negatives = set(sampler.negatives(i, N))
        assert negatives == {j for j in range(N) if SPEAKERS[j] != SPEAKERS[i]}
    assert sampler.label_names == list(dict.fromkeys(SPEAKERS))


def test_deterministic_from_seed():
    def draws(seed, rng=None):
        sampler = ClusterPairSampler(CLUSTERS, SPEAKERS, seed=seed)
        return [
            (sampler.positive(i, rng), sampler.negatives(i, 3, rng))
            for i in range(N)
        ]

    assert draws(4) == draws(4)
    assert draws(4) != draws(5)
    assert draws(0, rng=7) == draws(1, rng=7)


def test_labels_are_integer_clusters():
    sampler = ClusterPairSampler([3, 3, 7, 9], ["s", "s", "s", "t"])
    assert sampler.labels.tolist() == [0, 0, 1, 2]
    assert len(sampler) == 4


@pytest.mark.parametrize(
    "args, kwargs, error, message",
    [
        ((["a:0", "a:0"], ["a"]), {}, ValueError, "2 cluster ids for 1"),
        (([], []), {}, ValueError, "at least one"),
        ((["x", "x"], ["a", "b"]), {}, ValueError, "spans speakers 'a'"),
        ((["x"], ["a"]), {"mode": "speaker"}, ValueError, "mode must be"),
    ],
)
def test_bad_construction(args, kwargs, error, message):
    with pytest.raises(error, match=message):
        ClusterPairSampler(*args, **kwargs)


def test_bad_calls():
    sampler = ClusterPairSampler(CLUSTERS, SPEAKERS)
    with pytest.raises(IndexError, match="out of range"):
        sampler.positive(N)
    with pytest.raises(ValueError, match=">= 0"):
        sampler.negatives(0, -1)
