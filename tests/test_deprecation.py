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
