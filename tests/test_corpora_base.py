"""The declarative base of the corpus modules: a spec, its preparer, and
the shared steps that follow parsing."""

import inspect
import os

import pytest
from fake_corpora import write_wav

from emotion_invariant.corpora import CorpusError
from emotion_invariant.corpora.base import SHARED, Corpus, Option
from emotion_invariant.corpora.files import Problems, audio_files
from emotion_invariant.corpora.prepare import CORPORA, preparer
from emotion_invariant.corpora.steps import assign_speakers, sorted_rows


def _name(name):
    """Speaker, emotion and index of ``<speaker>_<neu|ang>_<n>.wav``."""
    parts = name[: -len(".wav")].split("_")
    ok = len(parts) == 3 and parts[1] in ("neu", "ang") and parts[2].isdigit()
    return parts if ok else None


def _parse(data_folder, problems, label="a"):
    """Rows of a flat folder of ``<speaker>_<emotion>_<n>.wav``."""
    rows = []
    expected = "<speaker>_<neu|ang>_<n>.wav"
    for path, uid, fields in audio_files(
        data_folder, _name, expected, problems
    ):
        spk, emo, _ = fields
        rows.append(
            {"ID": uid, "wav": path, "spk_id": spk, "emo": emo, "lab": label}
        )
    return rows


LABEL = Option("label", "a", "str", "Which label.", ("a", "b"), parse=True)
DEMO = Corpus(
    "demo",
    _parse,
    summary="Prepare demo.",
    root="A flat folder.",
    columns="``lab`` keeps the label option",
    licence="none",
    options=(LABEL,),
)


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "demo"
    for spk in ("s1", "s2", "s3", "s4", "s5"):
        for emo in ("neu", "ang"):
            for n in range(2):
                write_wav(str(root / f"{spk}_{emo}_{n}.wav"))
    return root


def test_a_spec_prepares_with_its_own_and_the_shared_options(corpus, tmp_path):
    prepare = DEMO.preparer()
    params = list(inspect.signature(prepare).parameters)
    assert params == ["data_folder", "save_folder", "label", *SHARED]
    assert prepare.__name__ == "prepare_demo"
    assert "label : str\n    Which label." in prepare.__doc__
    assert "Licence of the corpus: none." in prepare.__doc__
    out = prepare(str(corpus), str(tmp_path / "out"), label="b")
    with open(out["manifest"]) as f:
        header, first = f.readline(), f.readline()
    assert header.strip().endswith("lab") and first.strip().endswith(",b")
    with pytest.raises(ValueError, match="label must be 'a' or 'b', got 'c'"):
        prepare(str(corpus), str(tmp_path / "out"), label="c")


def test_a_file_name_the_spec_cannot_parse_is_named(corpus, tmp_path):
    bad = corpus / "s1_happy_0.wav"
    write_wav(str(bad))
    prepare = DEMO.preparer()
    with pytest.raises(CorpusError) as caught:
        prepare(str(corpus), str(tmp_path / "out"))
    assert str(caught.value).startswith(
        f"{bad}: unexpected file name; expected <speaker>_<neu|ang>_<n>.wav"
    )
    assert not (tmp_path / "out").exists()
    out = prepare(str(corpus), str(tmp_path / "out"), skip_bad=True)
    with open(out["manifest"]) as f:
        assert len(f.readlines()) == 1 + 20


def test_an_utterance_twice_names_both_files(tmp_path):
    rows = [
        {"ID": "x", "wav": "a/x.wav"},
        {"ID": "y", "wav": "a/y.wav"},
        {"ID": "x", "wav": "b/x.wav"},
    ]
    with pytest.raises(CorpusError, match="ID x occurs twice: a/x.wav and"):
        sorted_rows("demo", rows, "/c")
    with pytest.raises(CorpusError, match="/c: no usable utterance"):
        sorted_rows("demo", [], "/c")


def test_too_few_speakers_are_all_test_and_absent_ones_leave_no_fold():
    rows = [{"spk_id": s} for s in ("a", "b", "c")]
    genders = dict.fromkeys("abc", "")
    draw = dict(seed=0, held_out=4, test_fraction=0.2, dev_fraction=0.1)
    plan = {"fold_of": {"z": "1"}}
    fold_of = assign_speakers("demo", rows, genders, "/c", plan, **draw)
    assert fold_of == {} and {r["split"] for r in rows} == {"test"}
    assert {r["fold"] for r in rows} == {""}


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(options=(Option("jobs", 2, "int", "."),)), "shared by every"),
        (
            dict(options=(Option("split", "x", "str", ".", ("a", "b")),)),
            "defaults to 'x', not one of its choices",
        ),
        (dict(shared=("seed", "epochs")), "epochs not among the shared"),
        (dict(docs={"folds": ("int", ".")}), "folds not among the shared"),
        (dict(official=lambda row: "train"), "needs a split option"),
    ],
)
def test_a_spec_that_cannot_work_is_refused_when_declared(change, message):
    declared = dict(
        name="demo",
        parse=_parse,
        summary="Prepare demo.",
        root="A folder.",
        columns="",
        licence="none",
    )
    with pytest.raises(ValueError, match=f"demo: .*{message}"):
        Corpus(**{**declared, **change})


def test_every_corpus_module_declares_its_preparer():
    for corpus in CORPORA[1:]:  # synth is made by the synthesizer
        prepare = preparer(corpus)
        module = inspect.getmodule(prepare)
        assert module.CORPUS.name == corpus
        assert module.__name__ == f"emotion_invariant.corpora.{corpus}"
        assert f"prepare_{corpus}(" in prepare.__doc__


def test_audio_files_pass_over_folders_and_other_files(tmp_path):
    os.mkdir(tmp_path / "s1_neu_0.wav")  # a folder named like audio
    (tmp_path / "notes.txt").write_text("")
    write_wav(str(tmp_path / "s2_ang_1.wav"))
    found = list(audio_files(str(tmp_path), _name, "...", Problems()))
    assert [(stem, fields) for _, stem, fields in found] == [
        ("s2_ang_1", ["s2", "ang", "1"])
    ]
