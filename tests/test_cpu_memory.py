"""keep_freed_memory: large CPU tensors freed and allocated again reuse the
heap instead of faulting fresh pages in on every step. Each case runs in
its own process, since malloc's settings hold for a whole process."""

import os
import platform
import subprocess
import sys

import pytest

CHILD = """
import resource, sys, torch
from emotion_invariant.memory import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else False
torch.set_num_threads(1)
faults = []
for step in range(25):
    if step in (5, 24):
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
    x = torch.ones(8 << 20)  # 32 MB: over glibc's largest mmap threshold
    del x
print(applied, faults[1] - faults[0])  # over 19 steps, warmed up
"""

needs_glibc = pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
    reason="mallopt is glibc's",
)


def _faults(mode, env=None):
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    )
    applied, faults = done.stdout.split()
    return applied == "True", int(faults)


@needs_glibc
def test_freed_tensors_are_reused_not_faulted_in_again():
    _, default = _faults("default")
    applied, kept = _faults("keep")
    assert applied
    # by default each step faults its 32 MB in again: 8,192 pages of 4 KiB;
    # kept, most steps fault nothing (a few do, as the kernel reclaims)
    assert default > 19 * 8_000
    assert kept < default / 3


@needs_glibc
def test_the_environment_variable_keeps_the_default():
    applied, faults = _faults(
        "keep", env={"EMOTION_INVARIANT_MALLOC": "default"}
    )
    assert not applied and faults > 19 * 8_000


@pytest.mark.parametrize("value", ["Default", "off", "0", "default "])
def test_an_unknown_value_is_refused(value, monkeypatch):
    """A typo would otherwise keep the thresholds the user meant to turn
    off (2.6 GB more peak memory)."""
    from emotion_invariant.memory import keep_freed_memory

    monkeypatch.setenv("EMOTION_INVARIANT_MALLOC", value)
    with pytest.raises(ValueError) as err:
        keep_freed_memory()
    assert str(err.value) == (
        f"EMOTION_INVARIANT_MALLOC={value!r} is not valid; expected "
        "'default' (glibc's own settings) or unset (keep freed memory)"
    )


def test_an_empty_value_is_unset(monkeypatch):
    from emotion_invariant.memory import keep_freed_memory

    monkeypatch.setenv("EMOTION_INVARIANT_MALLOC", "")
    assert keep_freed_memory() in (True, False)


@pytest.mark.parametrize(
    "command",
    [
        [
            "recipes/speaker_verification/train.py",
            "hparams/speaker_verification/ecapa_baseline.yaml",
        ],
        ["-m", "emotion_invariant.clustering", "--help"],
    ],
    ids=["recipe", "clustering"],
)
def test_an_unknown_value_stops_a_command_in_one_line(command, tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, *command, f"--output_folder={out}"],
        capture_output=True,
        text=True,
        cwd=root,
        env={**os.environ, "EMOTION_INVARIANT_MALLOC": "off"},
    )
    assert done.returncode != 0
    assert done.stderr.strip() == (
        "error: EMOTION_INVARIANT_MALLOC='off' is not valid; expected "
        "'default' (glibc's own settings) or unset (keep freed memory)"
    )
    assert not out.exists()
