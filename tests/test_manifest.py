"""Manifest reading, validation and atomic writing."""

import json

import numpy as np
import pytest
import soundfile

from emotion_invariant.data.manifest import (
    ManifestError,
    read_manifest,
    read_splits,
    write_manifest,
)

HEADER = "ID,duration,wav,spk_id,emo\n"


def _write(path, text):
    path.write_text(text)
    return str(path)


def _wav(path, seconds=0.2):
    soundfile.write(str(path), np.zeros(int(16000 * seconds)) + 0.1, 16000)
    return str(path)


def test_roundtrip_and_data_root(tmp_path):
    _wav(tmp_path / "a.wav")
    rows = [
        {
            "ID": "a",
            "duration": 0.2,
            "wav": "$data_root/a.wav",
            "spk_id": "s1",
            "emo": "neu",
            "gender": "f",
            "extra": "x",
        },
    ]
    path = tmp_path / "m.csv"
    write_manifest(rows, str(path))
    header = path.read_text().splitlines()[0]
    assert header == "ID,duration,wav,spk_id,emo,gender,extra"
    back = read_manifest(str(path), check_audio=True)
    assert back[0]["gender"] == "f" and back[0]["duration"] == "0.200"


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "a,1.0,a.wav,s1,neu\na,1.0,b.wav,s1,ang\n",
            "line 3 (ID a): duplicate ID",
        ),
        ("a,1.0,a.wav,s1,joy\n", "line 2 (ID a): unknown emotion 'joy'"),
        ("a,x,a.wav,s1,neu\n", "duration 'x' is not a number"),
        ("a,0,a.wav,s1,neu\n", "duration must be > 0"),
        ("a,1.0,a.wav,,neu\n", "empty spk_id"),
        (",1.0,a.wav,s1,neu\n", "line 2: empty ID"),
        ("a,1.0,a.wav\n", "line 2: expected 5 fields"),
        ("", "has no rows"),
    ],
)
def test_bad_rows_name_the_row(tmp_path, body, message):
    path = _write(tmp_path / "m.csv", HEADER + body)
    with pytest.raises(ManifestError) as err:
        read_manifest(path)
    assert message in str(err.value)
    assert "m.csv" in str(err.value)


def test_missing_column(tmp_path):
    path = _write(tmp_path / "m.csv", "ID,duration,wav,emo\na,1,a.wav,neu\n")
    with pytest.raises(ManifestError, match="missing column.*spk_id"):
        read_manifest(path)


def test_missing_file(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(str(tmp_path / "nope.csv"))


def test_audio_checks(tmp_path):
    _wav(tmp_path / "good.wav")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF\x00\x00not a wav at all")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros(0), 16000)
    for name, message in [
        ("corrupt.wav", "unreadable audio file"),
        ("empty.wav", "empty audio file"),
        ("absent.wav", "audio file not found"),
    ]:
        path = _write(
            tmp_path / "m.csv",
            HEADER + "g,0.2,$data_root/good.wav,s1,neu\n"
            f"b,0.2,$data_root/{name},s1,neu\n",
        )
        read_manifest(path)  # headers are only opened on request
        with pytest.raises(ManifestError) as err:
            read_manifest(path, check_audio=True)
        assert f"line 3 (ID b): {message}" in str(err.value)
        assert name in str(err.value)


def test_unlabelled_rows_only_on_request(tmp_path):
    path = _write(tmp_path / "m.csv", HEADER + "a,1.0,a.wav,s1,\n")
    with pytest.raises(ManifestError, match="unknown emotion ''"):
        read_manifest(path)
    assert read_manifest(path, allow_empty_emo=True)[0]["emo"] == ""


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "m.csv"
    rows = [
        {"ID": "a", "duration": 1.0, "wav": "a", "spk_id": "s", "emo": "neu"},
        {"ID": "a", "duration": 1.0, "wav": "b", "spk_id": "s", "emo": "neu"},
    ]
    with pytest.raises(ManifestError, match="duplicate ID"):
        write_manifest(rows, str(path))
    assert list(tmp_path.iterdir()) == []


def test_old_file_survives_failed_write(tmp_path):
    path = tmp_path / "m.csv"
    good = [
        {"ID": "a", "duration": 1.0, "wav": "a", "spk_id": "s", "emo": "neu"}
    ]
    write_manifest(good, str(path))
    before = path.read_text()
    with pytest.raises(ManifestError):
        write_manifest(good + good, str(path))
    assert path.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.csv"]


def test_splits(tmp_path):
    rows = [{"spk_id": "a"}, {"spk_id": "b"}]
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"train": ["a"], "test": ["c"]}))
    with pytest.raises(ManifestError, match="names speaker 'c'"):
        read_splits(str(path), rows)
    path.write_text(json.dumps({"train": ["a", "b"], "test": ["b"]}))
    with pytest.raises(
        ManifestError, match="'b' is in both 'train' and 'test'"
    ):
        read_splits(str(path), rows)
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read splits"):
        read_splits(str(path), rows)
    path.write_text(json.dumps({"train": ["a"], "test": ["b"]}))
    assert read_splits(str(path), rows) == {"train": ["a"], "test": ["b"]}
