"""The prepare entry point: dispatch, options, errors without tracebacks."""

import os
import subprocess
import sys

import pytest
from fake_corpora import check_prepared, make_emodb, write_wav

from emotion_invariant.corpora import prepare as prepare_module
from emotion_invariant.corpora.prepare import CORPORA, main, prepare, preparer
from emotion_invariant.data.manifest import ManifestError, read_manifest


def test_every_corpus_has_a_preparer_with_the_common_signature():
    for corpus in CORPORA:
        fn = preparer(corpus)
        assert fn.__name__ == f"prepare_{corpus}"
    with pytest.raises(ValueError, match="unknown corpus 'timit'"):
        prepare("timit", "a", "b")


def test_cli_prepares_and_prints_outputs(tmp_path, capsys):
    root = str(tmp_path / "emodb")
    make_emodb(root)
    out = str(tmp_path / "out")
    assert main(["emodb", root, out, "--seed", "3", "--held-out", "5"]) == 0
    printed = capsys.readouterr().out
    manifest = os.path.join(out, "emodb.csv")
    assert manifest in printed
    outputs = {
        "manifest": manifest,
        "folds": os.path.join(out, "emodb_folds.json"),
        "splits": os.path.join(out, "emodb_splits.json"),
        "trials": os.path.join(out, "emodb_trials.txt"),
    }
    rows = check_prepared(outputs, "emodb")
    assert len({r["fold"] for r in rows}) == 2  # 10 speakers / 5 per fold


def test_cli_passes_only_given_options(tmp_path, monkeypatch):
    seen = {}

    def fake(corpus, data_folder, save_folder, **options):
        seen.update(options, corpus=corpus)
        return {}

    monkeypatch.setattr(prepare_module, "prepare", fake)
    assert main(["iemocap", "d", "o", "--all-emotions", "--skip-bad"]) == 0
    assert seen == {"corpus": "iemocap", "four_class": False, "skip_bad": True}


def test_cli_rejects_options_of_other_corpora(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["esd", "d", "o", "--label", "speaker"])
    assert exit_info.value.code == 2
    assert "--label does not apply to esd" in capsys.readouterr().err
    with pytest.raises(ValueError, match="label do not apply to esd"):
        prepare("esd", "d", "o", label="speaker")


def test_cli_error_is_one_line_and_writes_nothing(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    out = tmp_path / "out"
    assert main(["cremad", str(empty), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "is empty" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_failed_rerun_leaves_previous_outputs_intact(tmp_path):
    root = str(tmp_path / "emodb")
    make_emodb(root)
    out = str(tmp_path / "out")
    first = prepare("emodb", root, out)
    before = read_manifest(first["manifest"])
    with open(os.path.join(root, "wav", "03a02Wa.wav"), "wb") as f:
        f.write(b"not audio at all")
    with pytest.raises(ManifestError, match="03a02Wa.*unreadable"):
        prepare("emodb", root, out, seed=1)
    assert read_manifest(first["manifest"]) == before
    assert sorted(os.listdir(out)) == sorted(
        os.path.basename(p) for p in first.values()
    )


def test_synth_goes_through_the_same_entry_point(tmp_path):
    write_wav(str(tmp_path / "corpus" / "x.wav"))
    with pytest.raises(ManifestError, match="not a synthesized corpus"):
        prepare("synth", str(tmp_path / "corpus"), str(tmp_path / "out"))


def test_module_runs_as_a_command(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "emotion_invariant.corpora.prepare",
            "esd",
            str(tmp_path / "missing"),
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
    )
    assert result.returncode == 1
    assert (
        "no such folder" in result.stderr and "Traceback" not in result.stderr
    )
