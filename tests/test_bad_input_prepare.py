"""Bad input and faults met by data preparation: each test names a fault.

What the user sees and what is left on disk for each is summed up in
``docs/reliability.md``.
"""

import os
import stat

import pytest
from fake_corpora import EMODB_SPEAKERS, make_emodb, make_synth

from emotion_invariant.data import synth, trials
from emotion_invariant.data.prepare import prepare
from emotion_invariant.utils import atomic_open


def test_atomic_writes_are_mode_0600_whatever_the_umask(tmp_path):
    root, out = tmp_path / "emodb", tmp_path / "out"
    make_emodb(str(root), EMODB_SPEAKERS[:4])
    old = os.umask(0o022)
    try:
        prepare("emodb", str(root), str(out))
        os.umask(0o027)
        with atomic_open(tmp_path / "private.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o640


@pytest.fixture
def unwritable(tmp_path, monkeypatch):
    """A folder no file can be written in (mode 0500)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:
        # Root ignores modes: refuse as the kernel would for anyone else.
        real_open, real_mkdir = os.open, os.mkdir

        def guard(real):
            def refuse(path, *args, **kwargs):
                if os.path.abspath(os.fspath(path)).startswith(str(folder)):
                    raise PermissionError(13, "Permission denied", path)
                return real(path, *args, **kwargs)

            return refuse

        monkeypatch.setattr(os, "open", guard(real_open))
        monkeypatch.setattr(os, "mkdir", guard(real_mkdir))
    yield folder
    folder.chmod(0o700)


@pytest.mark.parametrize("cli", ["synth", "trials"])
def test_unwritable_output_folder_gives_traceback(
    cli, unwritable, tmp_path, capsys
):
    if cli == "synth":
        argv = ["--out", str(unwritable), "--speakers", "3"]
        argv += ["--utterances", "1", "--emotions", "neu", "--jobs", "1"]
        status = synth.main(argv)
    else:
        make_synth(str(tmp_path / "corpus"))
        manifest = str(tmp_path / "corpus" / "synth.csv")
        status = trials.main([manifest, str(unwritable / "trials.txt")])
    err = capsys.readouterr().err
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(unwritable) in lines[0] and "Permission denied" in lines[0]
    assert list(unwritable.iterdir()) == []
