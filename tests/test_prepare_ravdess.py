"""RAVDESS preparation on fake trees with the corpus's exact layout."""

import os

import pytest
import soundfile
from fake_corpora import check_prepared, make_ravdess, write_wav

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.ravdess import prepare_ravdess

CODES = ("neu", "cal", "hap", "sad", "ang", "fea", "dis", "sur")


def test_actors_emotions_genders_and_native_rate(tmp_path):
    root = str(tmp_path / "RAVDESS")
    n_speech = make_ravdess(root)
    outputs = prepare_ravdess(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "ravdess")
    # Song files (vocal channel 02) are left out.
    assert len(rows) == n_speech
    for row in rows:
        fields = row["ID"].split("-")
        assert fields[1] == "01"
        actor = int(fields[6])
        assert row["spk_id"] == f"Actor_{actor:02d}"
        assert row["gender"] == ("M" if actor % 2 else "F")
        assert row["emo"] == CODES[int(fields[2]) - 1]
        assert row["text"].endswith("by the door.")
        # Manifests keep the original 48 kHz files; duration from header.
        assert soundfile.info(row["wav"]).samplerate == 48000
        assert float(row["duration"]) == pytest.approx(0.2)
    assert {r["emo"] for r in rows} == set(CODES)


def test_actor_mismatch_and_bad_codes(tmp_path):
    root = str(tmp_path / "RAVDESS")
    make_ravdess(root, song=False)
    misplaced = os.path.join(root, "Actor_01", "03-01-01-01-01-02-02.wav")
    write_wav(misplaced, 48000)
    with pytest.raises(CorpusError, match="actor 02 in the name.*Actor_01"):
        prepare_ravdess(root, str(tmp_path / "out"))
    os.remove(misplaced)
    bad = os.path.join(root, "Actor_01", "03-01-09-01-01-01-01.wav")
    write_wav(bad, 48000)
    with pytest.raises(
        CorpusError, match="03-01-09-01-01-01-01.wav: unexpected"
    ):
        prepare_ravdess(root, str(tmp_path / "out"))


def test_actor_folder_given_instead_of_root(tmp_path):
    root = str(tmp_path / "ravdess")
    make_ravdess(root, song=False)
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_ravdess(os.path.join(root, "Actor_03"), str(tmp_path / "out"))


def test_parent_of_speech_and_song_points_to_speech(tmp_path):
    speech = str(tmp_path / "Audio_Speech_Actors_01-24")
    make_ravdess(speech, song=False)
    song = tmp_path / "Audio_Song_Actors_01-24" / "Actor_01"
    write_wav(str(song / "03-02-03-01-01-01-01.wav"), 48000)
    with pytest.raises(CorpusError, match=f"did you mean {speech}\\?"):
        prepare_ravdess(str(tmp_path), str(tmp_path / "out"))
