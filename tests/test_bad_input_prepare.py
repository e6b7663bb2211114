"""Bad input and faults met by data preparation: each test names a fault.

What the user sees and what is left on disk for each is summed up in
``docs/reliability.md``.
"""

import os
import stat

from fake_corpora import EMODB_SPEAKERS, make_emodb

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
