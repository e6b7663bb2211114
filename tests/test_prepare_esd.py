"""ESD preparation on fake trees with the corpus's exact layouts."""

import json
import os

import pytest
from fake_corpora import check_prepared, make_esd, write_wav

from emotion_invariant.corpora import CorpusError, base
from emotion_invariant.corpora.esd import prepare_esd

SPEAKERS = ("0001", "0002", "0011", "0012", "0015", "0016")
README_GENDERS = {
    "0001": "F",
    "0002": "F",
    "0011": "M",
    "0012": "M",
    "0015": "F",
    "0016": "F",
}


@pytest.fixture
def esd(tmp_path):
    root = tmp_path / "ESD"
    files = make_esd(str(root), SPEAKERS)
    return str(root), files


def test_speakers_emotions_genders_text_and_official_split(esd, tmp_path):
    root, files = esd
    outputs = prepare_esd(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "esd")
    assert len(rows) == len(files)
    by_id = {r["ID"]: r for r in rows}
    folder_emo = {"Neutral": "neu", "Happy": "hap", "Angry": "ang"}
    folder_emo.update({"Sad": "sad", "Surprise": "sur"})
    for spk, emo_dir, path in files:
        row = by_id[os.path.basename(path)[:-4]]
        assert row["spk_id"] == spk
        assert row["emo"] == folder_emo[emo_dir]
        assert row["emo_raw"] == emo_dir
        assert row["gender"] == README_GENDERS[spk]
        assert row["lang"] == ("zh" if spk <= "0010" else "en")
        assert row["wav"] == os.path.abspath(path)
        assert float(row["duration"]) == pytest.approx(0.2)
        assert row["official_split"] == os.path.basename(os.path.dirname(path))
        number = int(row["ID"].split("_")[1])
        assert row["text"] == f"Sentence {number}."
    with open(outputs["splits"]) as f:
        splits = json.load(f)
    assert len(splits["test"]) == 2 and len(splits["dev"]) == 1
    # Gender-balanced test split: one man, one woman among 2 M / 4 F.
    assert sorted(README_GENDERS[s] for s in splits["test"]) == ["F", "M"]


def test_layout_without_split_folders(tmp_path):
    root = str(tmp_path / "ESD")
    make_esd(root, SPEAKERS, split_folders=False, transcripts=False)
    outputs = prepare_esd(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "esd")
    assert len(rows) == 60
    assert "official_split" not in rows[0] and "text" not in rows[0]
    with pytest.raises(CorpusError, match="needs the train/ evaluation/"):
        prepare_esd(root, str(tmp_path / "out2"), split="official")


def test_official_split_is_flagged_as_sharing_speakers(esd, tmp_path):
    root, _ = esd
    outputs = prepare_esd(root, str(tmp_path / "out"), split="official")
    rows = check_prepared(outputs, "esd")
    mapping = {"train": "train", "evaluation": "dev", "test": "test"}
    assert all(r["split"] == mapping[r["official_split"]] for r in rows)
    with open(outputs["folds"]) as f:
        assert json.load(f)["speaker_overlap"] is True
    assert "splits" not in outputs
    assert not os.path.exists(tmp_path / "out" / "esd_splits.json")


def test_mandarin_transcripts_in_gb18030(tmp_path):
    root = str(tmp_path / "ESD")
    make_esd(root, SPEAKERS, per_emotion=1)
    with open(os.path.join(root, "0001", "0001.txt"), "wb") as f:
        f.write("0001_000001\t打远一看\t中立\n".encode("gb18030"))
    rows = check_prepared(prepare_esd(root, str(tmp_path / "out")), "esd")
    assert {r["ID"]: r for r in rows}["0001_000001"]["text"] == "打远一看"


def test_unexpected_name_raises_or_is_skipped_and_counted(esd, tmp_path):
    root, files = esd
    bad = os.path.join(root, "0011", "Sad", "train", "0011_1.wav")
    write_wav(bad)
    with pytest.raises(CorpusError, match="0011_1.wav: unexpected file name"):
        prepare_esd(root, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out" / "esd.csv")
    outputs = prepare_esd(root, str(tmp_path / "out"), skip_bad=True)
    rows = check_prepared(outputs, "esd")
    assert len(rows) == len(files)
    with open(outputs["prepare"]) as f:
        skipped = json.load(f)["summary"]["skipped"]
    assert skipped["unexpected file name"]["count"] == 1


def test_unreadable_wav_is_named(esd, tmp_path):
    root, _ = esd
    bad = os.path.join(root, "0012", "Angry", "train", "0012_000099.wav")
    with open(bad, "wb") as f:
        f.write(b"RIFF garbage")
    with pytest.raises(CorpusError, match="0012_000099.*unreadable audio"):
        prepare_esd(root, str(tmp_path / "out"))


def test_wrong_folder_says_did_you_mean(esd, tmp_path):
    root, _ = esd
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_esd(os.path.join(root, "0011"), str(tmp_path / "out"))
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_esd(str(tmp_path), str(tmp_path / "out"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match="is empty"):
        prepare_esd(str(empty), str(tmp_path / "out"))


def test_second_run_is_skipped_unless_options_change(
    esd, tmp_path, monkeypatch
):
    root, _ = esd
    out = str(tmp_path / "out")
    first = prepare_esd(root, out)
    calls = []
    real = base.add_durations

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(base, "add_durations", counting)
    assert prepare_esd(root, out) == first
    assert calls == []
    with open(first["splits"]) as f:
        before = json.load(f)
    prepare_esd(root, out, seed=7)
    assert calls == [1]
    with open(first["splits"]) as f:
        assert json.load(f) != before
    os.remove(first["trials"])
    prepare_esd(root, out, seed=7)
    assert calls == [1, 1] and os.path.isfile(first["trials"])
