"""Tests for emotion CopyPaste."""

import pickle
import random

import numpy as np
import pytest
import torch

from emotion_invariant.augment.copypaste import (
    EmotionCopyPaste,
    emotion_copypaste,
    random_crop,
)
from emotion_invariant.data.parallel import ParallelIndex

SPEC = {
    "A": {"neu": 3, "ang": 2, "hap": 1},
    "B": {"neu": 2, "sad": 2},
    "C": {"neu": 2},
    "D": {"sad": 1},
}


def make_corpus():
    """Rows plus constant waves whose value identifies the utterance."""
    rows, waves = [], {}
    for spk, emotions in SPEC.items():
        for emo, count in emotions.items():
            for i in range(count):
                uid = f"{spk}_{emo}_{i}"
                rows.append(
                    {
                        "ID": uid,
                        "duration": "1.0",
                        "wav": uid + ".wav",
                        "spk_id": spk,
                        "emo": emo,
                    }
                )
                waves[uid] = torch.full((300 + 50 * i,), float(len(rows)))
    return rows, waves


def runs(values):
    """Split a 1-D sequence into maximal runs that increase by exactly 1."""
    values = values.tolist()
    out = [[values[0]]]
    for v in values[1:]:
        if v == out[-1][-1] + 1:
            out[-1].append(v)
        else:
            out.append([v])
    return out


def test_segments_come_from_both_inputs():
    anchor = torch.arange(1000.0)
    partner = 5000.0 + torch.arange(800.0)
    for seed in range(30):
        out = emotion_copypaste(anchor, partner, seed, (0.3, 0.7), 600)
        assert out.shape == (600,)
        pieces = runs(out)
        assert len(pieces) == 2
        from_anchor = [p for p in pieces if p[0] < 5000]
        from_partner = [p for p in pieces if p[0] >= 5000]
        assert len(from_anchor) == len(from_partner) == 1
        assert 0.3 * 600 <= len(from_anchor[0]) <= 0.7 * 600
        assert from_anchor[0][-1] < 1000 and from_partner[0][-1] < 5800
        assert len(from_anchor[0]) + len(from_partner[0]) == 600


def test_order_and_split_are_random():
    anchor, partner = torch.zeros(400), torch.ones(400)
    firsts, shares = set(), set()
    for seed in range(40):
        out = emotion_copypaste(anchor, partner, random.Random(seed))
        firsts.add(float(out[0]))
        shares.add(int((out == 0).sum()))
    assert firsts == {0.0, 1.0}
    assert len(shares) > 10


def test_short_sources_are_padded_at_the_end():
    anchor, partner = torch.ones(50), 2 * torch.ones(30)
    out = emotion_copypaste(anchor, partner, 0, (0.5, 0.5), 200)
    assert out.shape == (200,)
    assert int((out == 1).sum()) == 50 and int((out == 2).sum()) == 30
    assert torch.all(out[80:] == 0)


def test_partner_follows_anchor_dtype():
    anchor = torch.ones(100, dtype=torch.float64)
    out = emotion_copypaste(anchor, torch.ones(100, dtype=torch.float32), 0)
    assert out.dtype == torch.float64


def test_random_crop():
    wave = torch.arange(100.0)
    for seed in range(10):
        out = random_crop(wave, 30, seed)
        assert len(runs(out)) == 1 and out.shape == (30,)
    assert torch.equal(random_crop(wave, 130, 0)[:100], wave)


def test_keeps_speaker_and_changes_emotion():
    rows, waves = make_corpus()
    by_value = {float(waves[r["ID"]][0]): r for r in rows}
    augment = EmotionCopyPaste(ParallelIndex(rows), prob=1.0, seed=3)
    for row in rows:
        view, kind = augment(
            row["ID"], waves[row["ID"]], lambda r: waves[r["ID"]], 400
        )
        assert view.shape == (400,)
        sources = [by_value[v] for v in set(view.tolist()) - {0.0}]
        assert all(s["spk_id"] == row["spk_id"] for s in sources)
        if row["spk_id"] in ("A", "B"):
            assert kind == "emotion"
            assert {s["ID"] for s in sources} - {row["ID"]}
            others = [s for s in sources if s["ID"] != row["ID"]]
            assert len(others) == 1 and others[0]["emo"] != row["emo"]
            assert row in sources  # the anchor's own segment
        elif row["spk_id"] == "C":
            assert kind == "speaker"
            assert any(s["ID"] != row["ID"] for s in sources)
        else:
            assert kind == "self"
            assert [s["ID"] for s in sources] == [row["ID"]]


def test_never_pairs_with_itself_when_avoidable():
    rows, waves = make_corpus()
    index = ParallelIndex(rows)
    augment = EmotionCopyPaste(index, prob=0.0, seed=0)
    by_value = {float(waves[r["ID"]][0]): r for r in rows}
    for epoch in range(5):
        augment.set_epoch(epoch)
        for row in rows:
            view, kind = augment(
                row["ID"], waves[row["ID"]], lambda r: waves[r["ID"]], 200
            )
            (value,) = set(view.tolist()) - {0.0}
            partner = by_value[value]
            assert partner["spk_id"] == row["spk_id"]
            assert (partner["ID"] == row["ID"]) == (row["spk_id"] == "D")
    assert index.counts["self"] == 5
    assert index.single_emotion_speakers == ["C", "D"]


def test_deterministic_from_seed_and_epoch():
    rows, waves = make_corpus()

    def views(seed, epoch):
        augment = EmotionCopyPaste(ParallelIndex(rows), prob=0.5, seed=seed)
        augment.set_epoch(epoch)
        return [
            augment(r["ID"], waves[r["ID"]], lambda p: waves[p["ID"]], 250)
            for r in rows
        ]

    def same(a, b):
        return all(
            ka == kb and torch.equal(va, vb) for (va, ka), (vb, kb) in zip(a, b)
        )

    assert same(views(7, 0), views(7, 0))
    assert not same(views(7, 0), views(8, 0))
    assert not same(views(7, 0), views(7, 1))
    # an explicit generator overrides the (seed, epoch, row_id) one
    augment = EmotionCopyPaste(ParallelIndex(rows), seed=1)

    def load(row):
        return waves[row["ID"]]

    a = augment(
        "A_neu_0", waves["A_neu_0"], load, 250, np.random.default_rng(2)
    )
    b = augment(
        "A_neu_0", waves["A_neu_0"], load, 250, np.random.default_rng(2)
    )
    assert torch.equal(a[0], b[0])


def test_picklable_for_dataloader_workers():
    rows, waves = make_corpus()
    augment = EmotionCopyPaste(ParallelIndex(rows), prob=0.5, seed=2)
    augment.set_epoch(3)
    copy = pickle.loads(pickle.dumps(augment))
    for row in rows:
        args = (row["ID"], waves[row["ID"]], lambda r: waves[r["ID"]], 120)
        (a, kind_a), (b, kind_b) = augment(*args), copy(*args)
        assert kind_a == kind_b and torch.equal(a, b)


def test_bad_input():
    rows, waves = make_corpus()
    augment = EmotionCopyPaste(ParallelIndex(rows))
    with pytest.raises(
        ValueError, match=r"audio of A_\w+ \(partner of A_neu_0"
    ):
        augment("A_neu_0", waves["A_neu_0"], lambda r: torch.ones(2, 10), 100)
    with pytest.raises(ValueError, match="anchor: expected a 1-D"):
        emotion_copypaste(torch.ones(2, 10), torch.ones(10), 0)
    with pytest.raises(ValueError, match="partner: empty"):
        emotion_copypaste(torch.ones(10), torch.ones(0), 0)
    with pytest.raises(ValueError, match="segment must be"):
        emotion_copypaste(torch.ones(10), torch.ones(10), 0, (0.8, 0.2))
    with pytest.raises(ValueError, match="prob must be"):
        EmotionCopyPaste(ParallelIndex(rows), prob=1.5)
