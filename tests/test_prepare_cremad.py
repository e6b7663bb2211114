"""CREMA-D preparation on fake trees with the corpus's exact layout."""

import json
import os

import pytest
from fake_corpora import check_prepared, make_cremad, write_wav

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.cremad import prepare_cremad


def test_actors_emotions_genders_intensity_and_text(tmp_path):
    root = str(tmp_path / "CREMA-D")
    genders = make_cremad(root)
    outputs = prepare_cremad(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "cremad")
    assert len(rows) == 6 * 6 * 2
    assert {r["spk_id"] for r in rows} == set(genders)
    for row in rows:
        actor, sentence, emo, level = row["ID"].split("_")
        assert row["spk_id"] == actor
        assert row["gender"] == genders[actor]
        assert row["emo"] == emo.lower()  # ANG -> ang, ..., NEU -> neu
        assert row["emo_raw"] == emo
        assert row["intensity"] == {"XX": "unspecified", "HI": "high"}[level]
        assert (
            row["text"]
            == {
                "DFA": "Don't forget a jacket.",
                "IEO": "It's eleven o'clock.",
            }[sentence]
        )
        assert row["lang"] == "en"
    with open(outputs["folds"]) as f:
        folds = json.load(f)["folds"]
    assert sorted(len(v) for v in folds.values()) == [3, 3]


def test_without_demographics_gender_is_left_out(tmp_path):
    root = str(tmp_path / "CREMA-D")
    make_cremad(root, demographics=False)
    rows = check_prepared(prepare_cremad(root, str(tmp_path / "out")), "cremad")
    assert "gender" not in rows[0]


def test_bad_demographics_header_is_named(tmp_path):
    root = str(tmp_path / "CREMA-D")
    make_cremad(root)
    path = os.path.join(root, "VideoDemographics.csv")
    with open(path, "w") as f:
        f.write("Actor,Gender\n1001,Male\n")
    message = (
        r"Demographics.csv: missing column\(s\) ActorID, Sex \(found: Actor"
    )
    with pytest.raises(CorpusError, match=message):
        prepare_cremad(root, str(tmp_path / "out"))


@pytest.mark.parametrize(
    "name",
    ["1001_DFA_JOY_XX.wav", "1001_DFA_ANG_ZZ.wav", "1001-DFA-ANG-XX.wav"],
)
def test_unexpected_file_names(tmp_path, name):
    root = str(tmp_path / "CREMA-D")
    make_cremad(root)
    write_wav(os.path.join(root, "AudioWAV", name))
    with pytest.raises(CorpusError, match=f"{name}: unexpected file name"):
        prepare_cremad(root, str(tmp_path / "out"))
    outputs = prepare_cremad(root, str(tmp_path / "out"), skip_bad=True)
    assert len(check_prepared(outputs, "cremad")) == 72


def test_git_lfs_pointer_is_explained(tmp_path):
    root = str(tmp_path / "CREMA-D")
    make_cremad(root)
    path = os.path.join(root, "AudioWAV", "1001_DFA_ANG_XX.wav")
    with open(path, "w") as f:
        f.write("version https://git-lfs.github.com/spec/v1\noid sha256:00\n")
    with pytest.raises(CorpusError, match="Git LFS pointer.*git lfs pull"):
        prepare_cremad(root, str(tmp_path / "out"))


def test_audio_folder_given_instead_of_root(tmp_path):
    root = str(tmp_path / "CREMA-D")
    make_cremad(root)
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_cremad(os.path.join(root, "AudioWAV"), str(tmp_path / "out"))


def test_nothing_usable_is_an_error_not_an_empty_manifest(tmp_path):
    root = tmp_path / "CREMA-D"
    (root / "AudioWAV").mkdir(parents=True)
    write_wav(str(root / "AudioWAV" / "notes.wav"))
    with pytest.raises(CorpusError, match="no usable utterance"):
        prepare_cremad(str(root), str(tmp_path / "out"), skip_bad=True)
    assert not (tmp_path / "out").exists()


def test_too_few_speakers_to_split(tmp_path):
    # Three speakers all go to test (tests/test_bad_input_prepare.py); one
    # cannot even give folds.
    root = str(tmp_path / "CREMA-D")
    make_cremad(root, actors=[1001])
    with pytest.raises(CorpusError, match="cannot split cremad by speakers"):
        prepare_cremad(root, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
