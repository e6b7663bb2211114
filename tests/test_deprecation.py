"""Moved modules keep their old paths for one release: importing one warns
and gives the new module's names; ``python -m OLD`` runs the new command
line."""

import importlib
import runpy
import sys
import warnings

import pytest

MOVED = {
    "emotion_invariant.score": "emotion_invariant.scoring.score",
    "emotion_invariant.export": "emotion_invariant.models.export",
    "emotion_invariant.verify": "emotion_invariant.verification.verify",
    "emotion_invariant.scoring.verify": "emotion_invariant.verification.verify",
    "emotion_invariant.cluster": "emotion_invariant.clustering.analysis",
    "emotion_invariant.data.prepare": "emotion_invariant.corpora.prepare",
    "emotion_invariant.data.synth": "emotion_invariant.corpora.synth",
}

#: Moved modules without a command line: old path -> (new path, a name).
MOVED_LIBRARY = {
    "emotion_invariant.data.corpora": ("emotion_invariant.corpora", "run"),
    "emotion_invariant.data.corpora.esd": (
        "emotion_invariant.corpora.esd",
        "prepare_esd",
    ),
    "emotion_invariant.data.audio_check": (
        "emotion_invariant.corpora.audio_check",
        "check_manifest_audio",
    ),
}


@pytest.mark.parametrize("old, new", MOVED.items())
def test_an_old_path_warns_and_is_the_new_module(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to"):
        module = importlib.import_module(old)
    assert module.main is importlib.import_module(new).main


@pytest.mark.parametrize("old", MOVED)
def test_an_old_command_line_runs_the_new_one(old, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", [old, "--help"])
    monkeypatch.delitem(sys.modules, old, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with pytest.raises(SystemExit) as done:
            runpy.run_module(old, run_name="__main__")
    assert done.value.code == 0
    assert "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("old, moved_to", MOVED_LIBRARY.items())
def test_an_old_library_path_warns_and_gives_the_new_names(old, moved_to):
    new, name = moved_to
    # A corpus module's old path is set up by its old package's.
    for stale in (old, old.rsplit(".", 1)[0]):
        if stale == old or stale in MOVED_LIBRARY:
            sys.modules.pop(stale, None)
    with pytest.warns(DeprecationWarning, match="moved to"):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
