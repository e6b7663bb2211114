"""IEMOCAP preparation on fake trees with the corpus's exact layout."""

import json
import os

import pytest
from fake_corpora import check_prepared, make_iemocap

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.iemocap import prepare_iemocap


@pytest.fixture(scope="module")
def iemocap(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("iemocap") / "IEMOCAP_full_release")
    return root, make_iemocap(root)


def test_four_classes_excited_merged_speakers_and_sessions(iemocap, tmp_path):
    root, labels = iemocap
    outputs = prepare_iemocap(root, str(tmp_path / "out"))
    rows = check_prepared(outputs, "iemocap")
    kept = {
        u: lab for u, lab in labels.items() if lab in ("neu hap ang sad exc")
    }
    assert sorted(r["ID"] for r in rows) == sorted(kept)
    for row in rows:
        utt = row["ID"]
        session, letter = utt[3:5], utt.rsplit("_", 1)[1][0]
        # Speaker: the session plus the utterance's own gender letter, not
        # the letter of the dialog (Ses01F_impro01_M000 is Session1 male).
        assert row["spk_id"] == f"Ses{session}{letter}"
        assert row["gender"] == letter
        assert row["fold"] == str(int(session))
        assert row["emo_raw"] == labels[utt]
        assert row["emo"] == ("hap" if labels[utt] == "exc" else labels[utt])
        assert row["text"] == f"Line {int(utt[-3:])} of {letter}."
        split = {"05": "test", "04": "dev"}.get(session, "train")
        assert row["split"] == split
    with open(outputs["folds"]) as f:
        folds = json.load(f)["folds"]
    assert folds == {str(n): [f"Ses0{n}F", f"Ses0{n}M"] for n in range(1, 6)}


def test_all_emotions_and_unmerged_excited(iemocap, tmp_path):
    root, labels = iemocap
    rows = check_prepared(
        prepare_iemocap(root, str(tmp_path / "a"), four_class=False), "iemocap"
    )
    emo = {r["ID"]: r["emo"] for r in rows}
    expected = {"fru": "oth", "exc": "hap", "sur": "sur"}
    for utt, label in labels.items():
        if label == "xxx":
            assert utt not in emo
        else:
            assert emo[utt] == expected.get(label, label)
    rows = check_prepared(
        prepare_iemocap(root, str(tmp_path / "b"), merge_excited=False),
        "iemocap",
    )
    assert {r["emo_raw"] for r in rows} == {"neu", "hap", "ang", "sad"}


def test_label_naming_missing_wav(tmp_path):
    root = str(tmp_path / "IEMOCAP")
    make_iemocap(root, sessions=[1, 2, 3])
    wav = os.path.join(
        root,
        "Session2",
        "sentences",
        "wav",
        "Ses02F_impro01",
        "Ses02F_impro01_M002.wav",
    )
    os.remove(wav)
    with pytest.raises(
        CorpusError,
        match="Ses02F_impro01.txt line .* names "
        "Ses02F_impro01_M002, but .* does not exist",
    ):
        prepare_iemocap(
            root, str(tmp_path / "out"), test_session=3, dev_session=2
        )
    outputs = prepare_iemocap(
        root,
        str(tmp_path / "out"),
        test_session=3,
        dev_session=2,
        skip_bad=True,
    )
    rows = check_prepared(outputs, "iemocap")
    assert "Ses02F_impro01_M002" not in {r["ID"] for r in rows}
    with open(outputs["prepare"]) as f:
        summary = json.load(f)["summary"]
    assert summary["skipped"]["missing audio"]["count"] == 1


def test_session_without_labels_and_wrong_folder(tmp_path):
    root = str(tmp_path / "IEMOCAP")
    make_iemocap(root, sessions=[1])
    with pytest.raises(CorpusError, match=f"did you mean {root}\\?"):
        prepare_iemocap(os.path.join(root, "Session1"), str(tmp_path / "o"))
    os.makedirs(os.path.join(root, "Session2", "sentences"))
    with pytest.raises(CorpusError, match="Session2.*EmoEvaluation: no such"):
        prepare_iemocap(root, str(tmp_path / "o"))
    with pytest.raises(ValueError, match="two different sessions"):
        prepare_iemocap(root, str(tmp_path / "o"), test_session=4)
