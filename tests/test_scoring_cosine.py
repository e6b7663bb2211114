"""Cosine scoring and score normalisation against per-trial references."""

import numpy as np
import pytest
import torch

from emotion_invariant.data.manifest import ManifestError, write_manifest
from emotion_invariant.scoring import (
    ScoringError,
    Trials,
    save_embeddings,
    score_trials,
)
from emotion_invariant.scoring.cosine import cosine_scores, l2_normalize


@pytest.fixture(scope="module")
def data():
    gen = torch.Generator().manual_seed(0)
    ids = [f"u{i}" for i in range(40)]
    emb = torch.randn(40, 16, generator=gen) + 0.3
    pairs = torch.randint(0, 40, (300, 2), generator=gen)
    records = [
        (int(i % 3 == 0), ids[e], ids[t], "neu-ang")
        for i, (e, t) in enumerate(pairs.tolist())
    ]
    cohort = torch.randn(30, 16, generator=gen) + 0.3
    return ids, emb, Trials.from_records(records), cohort


def loop_scores(ids, emb, trials, norm="none", cohort=None, topk=None):
    """SpeechBrain's recipe, one trial at a time (float64 here)."""
    lookup = {u: emb[i].double().unsqueeze(0) for i, u in enumerate(ids)}
    similarity = torch.nn.CosineSimilarity(dim=-1, eps=1e-6)
    out = []
    for _, enrol_id, test_id, *_ in trials.records():
        enrol, test = lookup[enrol_id], lookup[test_id]
        score = float(similarity(enrol, test)[0])
        if norm != "none":
            stats = []
            for side in (enrol, test):
                c = similarity(side.repeat(len(cohort), 1), cohort.double())
                if norm == "as":
                    c = torch.topk(c, topk).values
                stats.append((float(c.mean()), float(c.std())))
            z = (score - stats[0][0]) / stats[0][1]
            t = (score - stats[1][0]) / stats[1][1]
            score = {"z": z, "t": t}.get(norm, 0.5 * (z + t))
        out.append(score)
    return torch.tensor(out, dtype=torch.float64)


def test_scores_match_per_trial_loop(data):
    ids, emb, trials, _ = data
    ours = score_trials((ids, emb), trials, device="cpu")
    assert ours.dtype == torch.float32 and ours.shape == (len(trials),)
    assert torch.allclose(
        ours.double(), loop_scores(ids, emb, trials), atol=1e-6
    )


def test_chunking_does_not_change_scores(data):
    ids, emb, trials, _ = data
    unit = l2_normalize(emb)
    enrol, test = torch.from_numpy(trials.enrol), torch.from_numpy(trials.test)
    rows = torch.tensor([ids.index(n) for n in trials.names])
    reference = cosine_scores(unit, rows[enrol], rows[test])
    for chunk in (1, 7, 299, 300, 10_000):
        got = cosine_scores(unit, rows[enrol], rows[test], chunk_size=chunk)
        assert torch.equal(got, reference)
    default = score_trials((ids, emb), trials)
    assert torch.allclose(default, reference, atol=1e-6)


def test_score_trials_restores_thread_count(data):
    ids, emb, trials, _ = data
    before = torch.get_num_threads()
    score_trials((ids, emb), trials, device="cpu")
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("norm", ["z", "t", "s", "as"])
def test_normalisation_matches_per_trial_cohort_loop(data, norm):
    ids, emb, trials, cohort = data
    ours = score_trials(
        (ids, emb), trials, norm=norm, cohort=cohort, topk=10, device="cpu"
    )
    expected = loop_scores(ids, emb, trials, norm, cohort, topk=10)
    assert torch.allclose(ours.double(), expected, atol=1e-4)


def test_cohort_sources_agree(data, tmp_path):
    ids, emb, trials, cohort = data
    cohort_ids = ids[:25]
    path = tmp_path / "cohort.csv"
    write_manifest(
        [
            {
                "ID": u,
                "duration": 1.0,
                "wav": f"{u}.wav",
                "spk_id": u,
                "emo": "neu",
            }
            for u in cohort_ids
        ],
        str(path),
    )
    pt = tmp_path / "cohort.pt"
    save_embeddings(str(pt), cohort_ids, emb[:25])
    results = [
        score_trials((ids, emb), trials, norm="s", cohort=c)
        for c in (
            str(path),
            cohort_ids,
            str(pt),
            emb[:25],
            (cohort_ids, emb[:25]),
        )
    ]
    for other in results[1:]:
        assert torch.allclose(results[0], other, atol=1e-6)


def test_subtract_mean(data):
    ids, emb, trials, cohort = data
    for pool, source in ((cohort, cohort), (None, emb)):
        got = score_trials((ids, emb), trials, cohort=pool, subtract_mean=True)
        expected = loop_scores(ids, emb - source.mean(0), trials)
        assert torch.allclose(got.double(), expected, atol=1e-5)


def test_unknown_ids_are_listed(data):
    ids, emb, _, _ = data
    trials = Trials.from_records(
        [(1, "u1", "u2")] + [(0, "u1", f"x{i}") for i in range(8)], "t.txt"
    )
    with pytest.raises(ManifestError) as err:
        score_trials((ids, emb), trials)
    message = str(err.value)
    assert "t.txt: 8 trial(s) name 8 id(s)" in message
    assert "'x0', 'x1', 'x2', 'x3', 'x4'" in message and "x5" not in message
    assert "first on trial 2" in message and "--skip-missing" in message


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"norm": "s"}, "needs a cohort"),
        ({"norm": "q", "cohort": "C"}, "unknown norm"),
        ({"norm": "as", "topk": 31, "cohort": "C"}, r"topk \(31\) <= cohort"),
        ({"norm": "as", "topk": 1, "cohort": "C"}, "topk >= 2"),
        ({"norm": "z", "cohort": ["u1"]}, "at least 2"),
        ({"norm": "z", "cohort": ["u1", "nope"]}, "1 cohort id"),
        ({"norm": "z", "cohort": torch.ones(3, 5)}, "dimension 5"),
        ({"device": "cuda"}, "CUDA"),
    ],
)
def test_bad_options(data, kwargs, message):
    ids, emb, trials, cohort = data
    if isinstance(kwargs.get("cohort"), str):
        kwargs = {**kwargs, "cohort": cohort}
    if kwargs.get("device") == "cuda" and torch.cuda.is_available():
        pytest.skip("CUDA is available")
    with pytest.raises(ScoringError, match=message):
        score_trials((ids, emb), trials, **kwargs)


def test_zero_length_after_mean_subtraction_is_named():
    ids = ["a", "b", "c"]
    emb = torch.tensor([[1.0, 1.0], [2.0, 0.0], [0.0, 2.0]])
    with pytest.raises(ScoringError, match="zero length.*'a'"):
        score_trials((ids, emb), [(1, "a", "b")], subtract_mean=True)


def test_cohort_without_spread_is_refused():
    ids = ["a", "b"]
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    cohort = torch.tensor([[1.0, 1.0], [2.0, 2.0]])
    with pytest.raises(ScoringError, match="zero spread"):
        score_trials((ids, emb), [(1, "a", "b")], norm="z", cohort=cohort)


def test_scores_are_deterministic_across_runs(data):
    ids, emb, trials, cohort = data
    runs = [
        score_trials((ids, emb), trials, norm="as", cohort=cohort, topk=5)
        for _ in range(2)
    ]
    assert torch.equal(*runs)
    assert np.isfinite(runs[0].numpy()).all()
