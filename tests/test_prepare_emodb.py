"""EmoDB preparation on fake trees with the corpus's exact layout."""

import os

import pytest
from fake_corpora import EMODB_SPEAKERS, check_prepared, make_emodb, write_wav

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.emodb import prepare_emodb

LETTERS = {"W": "ang", "L": "bor", "E": "dis", "A": "fea"}
LETTERS.update({"F": "hap", "T": "sad", "N": "neu"})
MALE = {"03", "10", "11", "12", "15"}


def test_speakers_genders_emotions_and_text(tmp_path):
    root = str(tmp_path / "emodb")
    files = make_emodb(root)
    outputs = prepare_emodb(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "emodb")
    assert sorted(r["ID"] + ".wav" for r in rows) == sorted(files)
    assert {r["spk_id"] for r in rows} == set(EMODB_SPEAKERS)
    for row in rows:
        assert row["spk_id"] == row["ID"][:2]
        assert row["gender"] == ("M" if row["spk_id"] in MALE else "F")
        assert row["emo"] == LETTERS[row["ID"][5]]
        assert row["emo_raw"] == row["ID"][5]
        assert row["lang"] == "de"
    text = {r["ID"]: r["text"] for r in rows}
    assert text["03a01Wa"] == "Der Lappen liegt auf dem Eisschrank."
    # 10 speakers: 2 test (one of each gender), 1 dev, 7 train.
    test = {r["spk_id"] for r in rows if r["split"] == "test"}
    assert len(test) == 2 and len(test & MALE) == 1


def test_unexpected_name_and_wrong_folder(tmp_path):
    root = str(tmp_path / "emodb")
    make_emodb(root)
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_emodb(os.path.join(root, "wav"), str(tmp_path / "out"))
    write_wav(os.path.join(root, "wav", "03a01Xa.wav"))
    with pytest.raises(CorpusError, match="03a01Xa.wav: unexpected file name"):
        prepare_emodb(root, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")
