"""The run-folder lock: one live process per folder, stale locks taken
over, the holder named."""

import json
import logging
import os
import signal
import subprocess
import sys

import pytest

from emotion_invariant.runlock import (
    LOCK_NAME,
    RunFolderLocked,
    acquire_run_lock,
    lock_holder,
    run_lock,
)

# A process that locks argv[1] and waits until its stdin closes.
HOLDER = """
import sys
from emotion_invariant.runlock import acquire_run_lock
acquire_run_lock(sys.argv[1], purpose="train")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.fixture
def holder(tmp_path):
    """A live subprocess holding ``tmp_path/run``'s lock."""
    folder = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), "--marker"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "locked"
    yield folder, proc
    if proc.poll() is None:
        proc.kill()
    proc.wait()


def test_second_process_is_refused_naming_the_holder(holder):
    folder, proc = holder
    with pytest.raises(RunFolderLocked) as info:
        acquire_run_lock(folder)
    message = str(info.value)
    assert str(folder) in message
    assert f"pid {proc.pid} " in message
    assert "--marker" in message
    assert "wait for it to end or stop it" in message
    holder_info = lock_holder(folder)
    assert holder_info["pid"] == proc.pid
    assert holder_info["purpose"] == "train"


def test_lock_is_free_once_the_holder_ends(holder):
    folder, proc = holder
    proc.stdin.close()
    assert proc.wait() == 0
    # A clean exit removes the lock file: nothing stale to warn about.
    assert not (folder / LOCK_NAME).exists()
    assert lock_holder(folder) is None
    acquire_run_lock(folder).release()


def test_stale_lock_of_a_killed_process_is_taken_over(holder, caplog):
    folder, proc = holder
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (folder / LOCK_NAME).exists()  # left behind, but not held
    assert lock_holder(folder) is None
    with caplog.at_level(logging.WARNING, "emotion_invariant.runlock"):
        lock = acquire_run_lock(folder)
    try:
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1
        assert f"pid {proc.pid} " in warned[0]
        assert "--marker" in warned[0]
        assert lock_holder(folder)["pid"] == os.getpid()
    finally:
        lock.release()


def test_reentrant_within_one_process(tmp_path):
    folder = tmp_path / "run"
    first = acquire_run_lock(folder, purpose="train")
    second = acquire_run_lock(str(folder) + "/.")
    assert second is first
    second.release()
    # Still held until every acquisition is released.
    assert lock_holder(folder)["purpose"] == "train"
    first.release()
    assert lock_holder(folder) is None
    assert not (folder / LOCK_NAME).exists()


def test_released_lock_can_be_taken_by_another_process(tmp_path):
    folder = tmp_path / "run"
    probe = (
        "import sys\n"
        "from emotion_invariant.runlock import acquire_run_lock\n"
        "acquire_run_lock(sys.argv[1])\n"
    )
    with run_lock(folder):
        held = subprocess.run(
            [sys.executable, "-c", probe, str(folder)],
            capture_output=True,
            text=True,
        )
        assert held.returncode == 1
        assert "RunFolderLocked" in held.stderr
        assert f"pid {os.getpid()} " in held.stderr
    free = subprocess.run(
        [sys.executable, "-c", probe, str(folder)], capture_output=True
    )
    assert free.returncode == 0, free.stderr


def test_lock_file_records_the_holder(tmp_path):
    folder = tmp_path / "new" / "run"
    with run_lock(folder, purpose="export"):
        record = json.loads((folder / LOCK_NAME).read_text())
    assert record["pid"] == os.getpid()
    assert record["purpose"] == "export"
    assert record["since"]
    assert "pytest" in record["command"] or sys.executable in record["command"]


def test_only_the_main_ddp_process_locks(tmp_path, monkeypatch):
    from emotion_invariant.experiment import lock_output_folder

    folder = tmp_path / "run"
    monkeypatch.setenv("RANK", "1")
    assert lock_output_folder(str(folder)) is None
    assert lock_holder(folder) is None
    monkeypatch.setenv("RANK", "0")
    lock = lock_output_folder(str(folder), "train")
    try:
        assert lock_holder(folder)["pid"] == os.getpid()
    finally:
        lock.release()


def test_a_run_that_fails_to_start_holds_nothing(tmp_path):
    """In one process (a test's, a notebook's) a failed start frees the
    folder, and leaves none that it created for nothing."""
    from emotion_invariant.experiment import start

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    yaml = os.path.join(root, "hparams", "speaker_verification")
    out = tmp_path / "run"

    def refuse(hparams):
        raise ValueError("refused")

    with pytest.raises(ValueError, match="refused"):
        start(
            [
                os.path.join(yaml, "ecapa_baseline.yaml"),
                f"--data_folder={tmp_path}",
                f"--output_folder={out}",
                f"--save_folder={tmp_path / 'save'}",
            ],
            check=refuse,
        )
    assert lock_holder(out) is None
    assert not out.exists()
