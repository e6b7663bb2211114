"""Tests for same-speaker, other-emotion partner sampling."""

import pickle
import random
from collections import Counter

import numpy as np
import pytest

from emotion_invariant.data.manifest import ManifestError
from emotion_invariant.data.parallel import ParallelIndex
from emotion_invariant.seeding import as_rng


def make_rows(spec, texts=None):
    """Rows from ``{speaker: {emotion: count}}``; IDs are spk_emo_i."""
    rows = []
    for spk, emotions in spec.items():
        for emo, count in emotions.items():
            for i in range(count):
                row = {
                    "ID": f"{spk}_{emo}_{i}",
                    "duration": "1.0",
                    "wav": f"{spk}_{emo}_{i}.wav",
                    "spk_id": spk,
                    "emo": emo,
                }
                if texts is not None:
                    row["text"] = texts[i % len(texts)]
                rows.append(row)
    return rows


def select_speaker(rows, spk):
    return [r for r in rows if r["spk_id"] == spk]


SPEC = {
    "A": {"neu": 4, "ang": 2, "sad": 1},
    "B": {"neu": 3},
    "C": {"hap": 1},
}


def test_emotion_partner_same_speaker_other_emotion():
    rows = make_rows(SPEC)
    index = ParallelIndex(rows)
    rng = random.Random(1)
    by_id = {r["ID"]: r for r in rows}
    for row in select_speaker(rows, "A"):
        for _ in range(20):
            partner, kind = index.partner(row["ID"], rng)
            assert kind == "emotion"
            assert partner["spk_id"] == row["spk_id"]
            assert partner["emo"] != row["emo"]
            assert partner is by_id[partner["ID"]]


def test_uniform_over_emotions_then_utterances():
    # anchor neu: partner emotion ang (2 utts) or sad (1 utt), each ~1/2
    index = ParallelIndex(make_rows(SPEC))
    rng = np.random.default_rng(0)
    draws = Counter(index.partner("A_neu_0", rng)[0]["ID"] for _ in range(4000))
    assert set(draws) == {"A_ang_0", "A_ang_1", "A_sad_0"}
    assert draws["A_sad_0"] / 4000 == pytest.approx(0.5, abs=0.04)
    assert draws["A_ang_0"] / 4000 == pytest.approx(0.25, abs=0.04)


def test_fallbacks_and_counts():
    index = ParallelIndex(make_rows(SPEC))
    rng = random.Random(0)
    for _ in range(30):
        partner, kind = index.partner("B_neu_1", rng)
        assert kind == "speaker"
        assert partner["spk_id"] == "B"
        assert partner["ID"] != "B_neu_1"
    partner, kind = index.partner("C_hap_0", rng)
    assert (partner["ID"], kind) == ("C_hap_0", "self")
    index.partner("A_sad_0", rng)
    assert index.counts == {"emotion": 1, "speaker": 30, "self": 1}
    assert index.single_emotion_speakers == ["B", "C"]


def test_restricted_emotions():
    index = ParallelIndex(make_rows(SPEC), emotions={"sad"})
    rng = random.Random(0)
    for _ in range(20):
        assert index.partner("A_neu_0", rng)[0]["ID"] == "A_sad_0"
    # the sad utterance itself has no allowed other emotion
    partner, kind = index.partner("A_sad_0", rng)
    assert kind == "speaker" and partner["ID"] != "A_sad_0"
    # a per-call override wins over the index's setting
    partner, kind = index.partner("A_neu_0", rng, emotions={"ang"})
    assert kind == "emotion" and partner["emo"] == "ang"


def test_prefer_same_text():
    rows = make_rows({"A": {"neu": 3, "ang": 3}}, texts=["t0", "t1", "t2"])
    plain = ParallelIndex(rows)
    parallel = ParallelIndex(rows, prefer_same_text=True)
    rng = random.Random(0)
    for i in range(3):
        for _ in range(10):
            partner, _ = parallel.partner(f"A_neu_{i}", rng)
            assert partner["ID"] == f"A_ang_{i}"
    seen = {plain.partner("A_neu_0", rng)[0]["ID"] for _ in range(60)}
    assert seen == {"A_ang_0", "A_ang_1", "A_ang_2"}


def test_prefer_same_text_falls_back_when_absent():
    rows = make_rows({"A": {"neu": 1, "ang": 2}}, texts=["x", "y"])
    rows[0]["text"] = "only-neutral"
    index = ParallelIndex(rows, prefer_same_text=True)
    rng = random.Random(0)
    seen = {index.partner(rows[0]["ID"], rng)[0]["ID"] for _ in range(40)}
    assert seen == {"A_ang_0", "A_ang_1"}


def test_deterministic_given_rng():
    index = ParallelIndex(make_rows(SPEC))
    ids = [r["ID"] for r in make_rows(SPEC)]

    def draw(rng):
        return [index.partner(uid, rng)[0]["ID"] for uid in ids * 5]

    assert draw(random.Random(5)) == draw(random.Random(5))
    assert draw(np.random.default_rng(5)) == draw(np.random.default_rng(5))
    seeded = [ParallelIndex(make_rows(SPEC), seed=3) for _ in range(2)]
    assert [seeded[0].partner(u)[0]["ID"] for u in ids * 5] == [
        seeded[1].partner(u)[0]["ID"] for u in ids * 5
    ]


def test_picklable_for_dataloader_workers():
    index = ParallelIndex(make_rows(SPEC), seed=4)
    copy = pickle.loads(pickle.dumps(index))
    ids = [r["ID"] for r in make_rows(SPEC)] * 3
    assert [index.partner(u)[0]["ID"] for u in ids] == [
        copy.partner(u)[0]["ID"] for u in ids
    ]


def test_bad_input():
    index = ParallelIndex(make_rows(SPEC))
    with pytest.raises(ManifestError, match="'nope' is not in the parallel"):
        index.partner("nope")
    rows = make_rows(SPEC)
    rows[2]["emo"] = "joy"
    with pytest.raises(ManifestError, match="unknown emotion 'joy'"):
        ParallelIndex(rows, source="train.csv")
    with pytest.raises(ManifestError, match="no rows"):
        ParallelIndex([])
    with pytest.raises(TypeError, match="random.Random"):
        as_rng("seed")
