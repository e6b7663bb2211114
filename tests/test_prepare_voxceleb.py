"""VoxCeleb preparation on fake trees with the corpus's exact layout."""

import os

import pytest
from fake_corpora import check_prepared, make_voxceleb

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.voxceleb import prepare_voxceleb


def test_rows_are_oth_with_genders_and_whole_videos_in_dev(tmp_path):
    root = str(tmp_path / "vox1")
    genders = make_voxceleb(root, speakers=4, videos=10)
    outputs = prepare_voxceleb(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "voxceleb")
    assert len(rows) == 4 * 10 * 2
    assert {r["emo"] for r in rows} == {"oth"}
    for row in rows:
        spk, video, utt = row["ID"].split("--")
        assert row["spk_id"] == spk and row["gender"] == genders[spk]
        assert row["wav"].endswith(os.path.join(spk, video, utt + ".wav"))
    for spk in genders:
        dev = {
            r["ID"].split("--")[1]
            for r in rows
            if r["spk_id"] == spk and r["split"] == "dev"
        }
        train = {
            r["ID"].split("--")[1]
            for r in rows
            if r["spk_id"] == spk and r["split"] == "train"
        }
        assert len(dev) == 1 and len(train) == 9 and not dev & train
    # A speaker-classifier split: no folds, no trials, flagged overlap.
    assert "trials" not in outputs and "splits" not in outputs
    assert "fold" not in rows[0]


def test_speaker_split_gives_trials(tmp_path):
    root = str(tmp_path / "vox1")
    make_voxceleb(root, speakers=6, videos=2)
    outputs = prepare_voxceleb(root, str(tmp_path / "out"), split="speakers")
    rows = check_prepared(outputs, "voxceleb")
    assert "trials" in outputs and rows[0]["fold"]


def test_m4a_must_be_converted(tmp_path):
    root = str(tmp_path / "vox2")
    os.makedirs(os.path.join(root, "aac", "id00012", "21Uxsk56VDQ"))
    open(
        os.path.join(root, "aac", "id00012", "21Uxsk56VDQ", "00001.m4a"), "wb"
    ).close()
    with pytest.raises(
        CorpusError, match=r"only aac/ \(.m4a\) audio found.*ffmpeg"
    ):
        prepare_voxceleb(root, str(tmp_path / "out"))
    make_voxceleb(root, speakers=4)
    m4a = os.path.join(root, "wav", "id10001", "vid0xYz", "00009.m4a")
    open(m4a, "wb").close()
    with pytest.raises(CorpusError, match="00009.m4a: .m4a audio.*convert"):
        prepare_voxceleb(root, str(tmp_path / "out"))


def test_wrong_folder(tmp_path):
    root = str(tmp_path / "vox1")
    make_voxceleb(root)
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_voxceleb(os.path.join(root, "wav"), str(tmp_path / "out"))
