"""MSP-Podcast preparation on fake trees with the corpus's exact layouts."""

import json
import os

import pytest
from fake_corpora import check_prepared, make_msppodcast

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.msppodcast import prepare_msppodcast

CODES = {"A": "ang", "S": "sad", "H": "hap", "U": "sur", "F": "fea"}
CODES.update({"D": "dis", "C": "oth", "N": "neu", "O": "oth"})


@pytest.mark.parametrize("old_format", [False, True])
def test_classes_speakers_genders_and_unknown_speakers(tmp_path, old_format):
    root = str(tmp_path / "MSP-PODCAST")
    truth = make_msppodcast(root, old_format=old_format)
    outputs = prepare_msppodcast(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "msppodcast")
    # No-agreement segments (X) are left out.
    assert {r["ID"] + ".wav" for r in rows} == {
        name for name, (_, letter) in truth.items() if letter != "X"
    }
    for row in rows:
        spk, letter = truth[row["ID"] + ".wav"]
        assert row["emo"] == CODES[letter] and row["emo_raw"] == letter
        if spk == "Unknown":
            assert row["spk_id"] == "nospk-" + row["ID"]
            assert row["split"] == row["fold"] == ""
        else:
            assert row["spk_id"] == spk
            assert row["gender"] == ("M" if int(spk) % 2 else "F")
    with open(outputs["folds"]) as f:
        assert json.load(f)["unknown_speaker_utterances"] == 9


def test_official_split(tmp_path):
    root = str(tmp_path / "MSP-PODCAST")
    make_msppodcast(root, unknown=0)
    outputs = prepare_msppodcast(root, str(tmp_path / "out"), split="official")
    rows = check_prepared(outputs, "msppodcast")
    mapping = {"Train": "train", "Development": "dev", "Test1": "test"}
    assert all(r["split"] == mapping[r["official_split"]] for r in rows)
    # The official sets here are speaker-disjoint, so a splits file exists.
    assert "splits" in outputs


def test_missing_labels_and_missing_audio(tmp_path):
    root = str(tmp_path / "MSP-PODCAST")
    make_msppodcast(root)
    os.remove(os.path.join(root, "Audios", "MSP-PODCAST_0002_0003.wav"))
    with pytest.raises(
        CorpusError, match="names MSP-PODCAST_0002_0003.wav, but .* not exist"
    ):
        prepare_msppodcast(root, str(tmp_path / "out"))
    os.remove(os.path.join(root, "Labels", "labels_consensus.csv"))
    with pytest.raises(CorpusError, match="Labels: no label file"):
        prepare_msppodcast(root, str(tmp_path / "out"))
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_msppodcast(os.path.join(root, "Audios"), str(tmp_path / "o"))


def test_old_release_without_speaker_file(tmp_path):
    root = str(tmp_path / "MSP-PODCAST")
    make_msppodcast(root, old_format=True)
    os.remove(os.path.join(root, "Speaker_ids.txt"))
    with pytest.raises(CorpusError, match="no SpkrID column .* Speaker_ids"):
        prepare_msppodcast(root, str(tmp_path / "out"))
