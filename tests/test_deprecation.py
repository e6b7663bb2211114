"""Moved modules keep their old paths for one release: importing one warns
and gives the new module's names; ``python -m OLD`` runs the new command
line."""

import ast
import importlib
import pathlib
import runpy
import subprocess
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
    "emotion_invariant.compare": ("emotion_invariant.comparison", "main"),
}

#: Modules split in several: old path -> {new path: the names it took}.
SPLIT = {
    "emotion_invariant.utils": {
        "emotion_invariant.atomic": (
            "atomic_path",
            "atomic_open",
            "staged_files",
        ),
        "emotion_invariant.messages": ("os_error_message", "shorten"),
        "emotion_invariant.seeding": ("step_seed", "as_rng"),
        "emotion_invariant.memory": ("keep_freed_memory",),
    },
}

ROOT = pathlib.Path(__file__).resolve().parents[1]


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


@pytest.mark.parametrize("old, parts", SPLIT.items())
def test_a_split_module_warns_and_gives_every_name(old, parts):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to") as caught:
        module = importlib.import_module(old)
    assert {str(w.message).split()[3].rstrip(";") for w in caught} == set(parts)
    for new, names in parts.items():
        for name in names:
            assert getattr(module, name) is getattr(
                importlib.import_module(new), name
            ), name


def _library():
    """Dotted name -> path of every library module."""
    found = {}
    for path in sorted((ROOT / "emotion_invariant").rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imported(path):
    """Every dotted name an import in ``path`` may name (lazy ones too)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def old_paths():
    """The library modules that are old paths: those that call
    ``emotion_invariant.deprecation.moved``."""
    return {
        name
        for name, path in _library().items()
        if "emotion_invariant.deprecation" in set(_imported(path))
    }


def test_the_tree_imports_no_old_path():
    """Only the old paths themselves and this file name an old path: the
    project's own code never warns its users."""
    old = old_paths()
    assert {"emotion_invariant.utils", "emotion_invariant.cluster"} <= old
    this = pathlib.Path(__file__).resolve()
    sources = [
        path
        for folder in ("emotion_invariant", "recipes", "tests", "benchmarks")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path != this
    ]
    library = _library()
    bad = sorted(
        {
            f"{path.relative_to(ROOT)} imports {o}"
            for path in sources
            if not any(path == library.get(o) for o in old)
            for name in _imported(path)
            for o in old
            if name == o or name.startswith(o + ".")
        }
    )
    assert not bad, bad


def test_importing_the_library_warns_of_no_old_path():
    """Every library module but the old paths, imported in a fresh
    interpreter with the project's deprecation warnings as errors (a
    package's ``__main__`` runs its command line when imported: the test
    above reads its imports)."""
    old = old_paths()
    names = [
        name
        for name in _library()
        if name not in old and not name.endswith(".__main__")
    ]
    code = (
        "import importlib, sys, warnings\n"
        "warnings.filterwarnings('error', category=DeprecationWarning,"
        " message='emotion_invariant')\n"
        "for name in sys.argv[1:]:\n"
        "    importlib.import_module(name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *names],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-2000:]
