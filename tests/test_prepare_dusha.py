"""Dusha (crowd) preparation on fake trees with the corpus's exact layout."""

import json
import logging
import os

import pytest
from fake_corpora import check_prepared, make_dusha

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.dusha import prepare_dusha

CODES = {"angry": "ang", "sad": "sad", "neutral": "neu", "positive": "hap"}


@pytest.mark.parametrize("fmt", ["jsonl", "tsv"])
def test_majority_labels_speakers_and_official_part(tmp_path, fmt):
    root = str(tmp_path / "dusha")
    truth = make_dusha(root, fmt=fmt)
    outputs = prepare_dusha(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "dusha")
    assert {r["ID"] for r in rows} == set(truth)
    for row in rows:
        source, label = truth[row["ID"]]
        assert row["spk_id"] == source
        assert row["emo_raw"] == label
        assert row["emo"] == CODES[label]
        assert row["lang"] == "ru" and row["text"] == "привет"
        speaker_number = int(source[3:])
        part = "crowd_test" if speaker_number >= 4 else "crowd_train"
        assert row["official_split"] == part
    official = check_prepared(
        prepare_dusha(root, str(tmp_path / "o2"), split="official"), "dusha"
    )
    assert {r["split"] for r in official} == {"train", "test"}
    assert all(r["split"] == r["official_split"][6:] for r in official)


def test_golden_label_wins_ties_are_dropped_speaker_label(tmp_path):
    extra = [
        ("gold1", "spk0", ("sad", "sad", "angry"), "neutral"),
        ("tie1", "spk1", ("sad", "angry"), ""),
        ("oth1", "spk2", ("other", "other", "sad"), ""),
    ]
    root = str(tmp_path / "dusha")
    make_dusha(root, extra=extra)
    rows = check_prepared(prepare_dusha(root, str(tmp_path / "a")), "dusha")
    by_id = {r["ID"]: r for r in rows}
    assert by_id["gold1"]["emo"] == "neu"
    assert "tie1" not in by_id
    assert by_id["oth1"]["emo"] == "oth"
    # The acted label is the speaker_emo field (the first vote here).
    rows = prepare_dusha(root, str(tmp_path / "b"), label="speaker")
    by_id = {r["ID"]: r for r in check_prepared(rows, "dusha")}
    assert by_id["gold1"]["emo"] == "sad" and by_id["tie1"]["emo"] == "sad"


def test_missing_source_id_is_flagged_and_kept_out(tmp_path, caplog):
    extra = [(f"anon{i}", "", ("sad", "sad", "sad"), "") for i in range(3)]
    root = str(tmp_path / "dusha")
    make_dusha(root, extra=extra)
    with caplog.at_level(logging.WARNING):
        outputs = prepare_dusha(root, str(tmp_path / "out"))
    assert "3 utterance(s) have no speaker" in caplog.text
    rows = check_prepared(outputs, "dusha")
    anon = [r for r in rows if r["ID"].startswith("anon")]
    assert [r["spk_id"] for r in anon] == [f"nospk-anon{i}" for i in range(3)]
    assert all(r["split"] == "" and r["fold"] == "" for r in anon)
    with open(outputs["trials"]) as f:
        assert "anon" not in f.read()
    with open(outputs["folds"]) as f:
        assert json.load(f)["unknown_speaker_utterances"] == 3


def test_missing_wav_unknown_label_and_bad_line(tmp_path):
    root = str(tmp_path / "dusha")
    make_dusha(root)
    os.remove(os.path.join(root, "crowd_train", "wavs", "h0ang0.wav"))
    with pytest.raises(CorpusError, match="hash_id h0ang0.*names wavs/h0ang0"):
        prepare_dusha(root, str(tmp_path / "out"))
    path = os.path.join(root, "crowd_test", "raw_crowd_test.jsonl")
    with open(path, "a") as f:
        f.write("{not json\n")
    outputs = prepare_dusha(root, str(tmp_path / "out"), skip_bad=True)
    with open(outputs["prepare"]) as f:
        skipped = json.load(f)["summary"]["skipped"]
    assert skipped["missing audio"]["count"] == 1
    assert skipped["bad label line"]["count"] == 1
    root2 = str(tmp_path / "dusha2")
    make_dusha(root2, extra=[("joy1", "spk0", ("joy", "joy", "sad"), "")])
    with pytest.raises(CorpusError, match="unknown emotion 'joy'"):
        prepare_dusha(root2, str(tmp_path / "out2"))


def test_part_without_annotation_file(tmp_path):
    root = str(tmp_path / "dusha")
    make_dusha(root)
    os.remove(os.path.join(root, "crowd_test", "raw_crowd_test.jsonl"))
    with pytest.raises(CorpusError, match="crowd_test: no annotation file"):
        prepare_dusha(root, str(tmp_path / "out"))
