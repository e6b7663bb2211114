"""Checkpoints that survive a full disk, a kill mid-save and a corrupt file
(``emotion_invariant.checkpoints``)."""

import errno
import logging
import os
import re
import shutil
import socket
import subprocess
import sys

import pytest
import torch
from fake_corpora import TINY_ECAPA
from recipe_scripts import load_recipe
from speechbrain.utils.epoch_loop import EpochCounter

from emotion_invariant.checkpoints import AtomicCheckpointer, CheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NO_SPACE = os.strerror(errno.ENOSPC)
# What torch.save raises when the disk fills: no errno, no file name.
TORCH_FULL = "[enforce fail at inline_container.cc:664] . unexpected pos 5 vs 3"


def _checkpointer(folder, value):
    """A checkpointer of a model whose weights are all ``value``, and an
    epoch counter (a recoverable with a saver of its own)."""
    model = torch.nn.Linear(8, 8)
    with torch.no_grad():
        model.weight.fill_(value)
    counter = EpochCounter(10)
    recoverables = {"counter": counter, "embedding_model": model}
    return AtomicCheckpointer(folder, recoverables), model, counter


def _two_checkpoints(folder):
    """An older checkpoint (weights 1, epoch 1, EER 0.2) and a newer one
    (weights 2, epoch 2, EER 0.1)."""
    saver, model, counter = _checkpointer(folder, 1.0)
    counter.current = 1
    older = saver.save_checkpoint(meta={"EER": 0.2, "UA": 0.5})
    with torch.no_grad():
        model.weight.fill_(2.0)
    counter.current = 2
    newer = saver.save_checkpoint(meta={"EER": 0.1, "UA": 0.6})
    return older, newer


def _fill_disk(written):
    """A ``torch.save`` that writes part of the file, then finds the disk
    full; ``written`` is ``"errno"`` (an ``OSError`` as Python's own
    writes give) or ``"torch"`` (the ``RuntimeError`` torch gives)."""

    def save(obj, path, *args, **kwargs):
        with open(path, "wb") as f:
            f.write(b"PK\x03\x04 half a file")
        if written == "errno":
            raise OSError(errno.ENOSPC, NO_SPACE)
        raise RuntimeError(TORCH_FULL)

    return save


def _entries(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize("written", ["errno", "torch"])
def test_full_disk_mid_save_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, written
):
    save = tmp_path / "save"
    saver, model, counter = _checkpointer(save, 1.0)
    counter.current = 1
    saver.save_and_keep_only(meta={"EER": 0.3}, min_keys=["EER"])
    (first,) = _entries(save)
    with torch.no_grad():
        model.weight.fill_(2.0)
    counter.current = 2
    monkeypatch.setattr(torch, "save", _fill_disk(written))
    # torch's error says nothing of the disk: the checkpointer looks.
    usage = shutil.disk_usage(save)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda path: usage._replace(free=0)
    )
    with pytest.raises(OSError) as failure:
        saver.save_and_keep_only(meta={"EER": 0.1}, min_keys=["EER"])
    monkeypatch.undo()
    assert str(failure.value) == (
        f"cannot write checkpoint in {save}: {NO_SPACE}"
    )
    assert failure.value.errno == errno.ENOSPC
    assert _entries(save) == [first]  # no CKPT+ folder, no staging folder

    # A restart: the first checkpoint comes back, and training goes on.
    restarted, model, counter = _checkpointer(save, 0.0)
    found = restarted.recover_if_possible(min_key="EER")
    assert found.path.name == first
    assert counter.current == 1 and bool((model.weight == 1).all())
    counter.current = 2
    restarted.save_and_keep_only(meta={"EER": 0.1}, min_keys=["EER"])
    assert len(restarted.list_checkpoints()) == 1
    assert restarted.recover_if_possible(min_key="EER").meta["EER"] == 0.1


def test_other_save_errors_are_not_blamed_on_the_disk(tmp_path, monkeypatch):
    """A failing saver on a disk with room raises its own error, and still
    leaves nothing behind."""
    saver, _, _ = _checkpointer(tmp_path, 1.0)
    monkeypatch.setattr(torch, "save", _fill_disk("torch"))
    with pytest.raises(RuntimeError, match=re.escape(TORCH_FULL)):
        saver.save_checkpoint()
    assert _entries(tmp_path) == []


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _flip_a_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # torch.load alone would not notice
    path.write_bytes(bytes(data))


CORRUPTIONS = {
    "truncated": (_truncate, "embedding_model.ckpt"),
    "random bytes": (
        lambda path: path.write_bytes(os.urandom(300)),
        "embedding_model.ckpt",
    ),
    "flipped byte": (_flip_a_byte, "embedding_model.ckpt"),
    "missing": (os.remove, "embedding_model.ckpt"),
    "empty counter": (lambda path: path.write_bytes(b""), "counter.ckpt"),
    "unreadable meta": (
        lambda path: path.write_text("EER: [0.1\n"),
        "CKPT.yaml",
    ),
    "empty meta": (lambda path: path.write_text(""), "CKPT.yaml"),
}
# How each recovering caller asks for a checkpoint (the newer is first in
# every order).
ASKS = {
    "newest": {},
    "min_key": {"min_key": "EER"},
    "max_key": {"max_key": "UA"},
    "importance_key": {"importance_key": lambda ckpt: ckpt.meta["UA"]},
}


@pytest.mark.parametrize("ask", ASKS)
@pytest.mark.parametrize("corruption", CORRUPTIONS)
def test_a_corrupt_checkpoint_is_skipped(tmp_path, caplog, corruption, ask):
    older, newer = _two_checkpoints(tmp_path)
    spoil, name = CORRUPTIONS[corruption]
    spoil(newer.path / name)
    restarted, model, counter = _checkpointer(tmp_path, 0.0)
    with caplog.at_level(logging.WARNING):
        assert restarted.find_checkpoint(**ASKS[ask]).path == older.path
        found = restarted.recover_if_possible(**ASKS[ask])
    assert found.path == older.path
    assert counter.current == 1 and bool((model.weight == 1).all())
    assert str(newer.path / name) in caplog.text
    assert "weights_only" not in caplog.text


def test_a_checkpoint_failing_to_load_is_skipped(tmp_path, caplog):
    """A file that looks sound but fails to load (found only by loading
    it) is skipped too, named."""
    older, newer = _two_checkpoints(tmp_path)
    (newer.path / "counter.ckpt").write_text("two\n")
    restarted, model, counter = _checkpointer(tmp_path, 0.0)
    with caplog.at_level(logging.WARNING):
        assert restarted.recover_if_possible().path == older.path
    assert counter.current == 1 and bool((model.weight == 1).all())
    assert f"{newer.path / 'counter.ckpt'}: ValueError: invalid" in caplog.text


def test_no_loadable_checkpoint_is_an_error_naming_each(tmp_path):
    older, newer = _two_checkpoints(tmp_path)
    _truncate(newer.path / "embedding_model.ckpt")
    (older.path / "embedding_model.ckpt").write_bytes(os.urandom(300))
    restarted, _, _ = _checkpointer(tmp_path, 0.0)
    for call in (restarted.recover_if_possible, restarted.find_checkpoint):
        with pytest.raises(CheckpointError) as failure:
            call(min_key="EER")
        message = str(failure.value)
        assert f"{newer.path / 'embedding_model.ckpt'}: " in message
        assert f"{older.path / 'embedding_model.ckpt'}: " in message
        assert "weights_only" not in message
    # Checkpoints that a predicate leaves out are no error.
    assert restarted.recover_if_possible(max_key="loss") is None


def test_a_leftover_staging_folder_is_ignored_then_removed(tmp_path):
    """A process killed mid-save leaves its hidden staging folder: it is
    never listed nor recovered, and the next save removes it."""
    older, newer = _two_checkpoints(tmp_path)
    leftover = tmp_path / f".{newer.path.name}.0a1b2c3d.tmp"
    newer.path.rename(leftover)
    restarted, model, counter = _checkpointer(tmp_path, 0.0)
    assert [c.path for c in restarted.list_checkpoints()] == [older.path]
    assert restarted.recover_if_possible().path == older.path
    assert counter.current == 1
    restarted.save_checkpoint()
    assert not leftover.exists()
    assert len(restarted.list_checkpoints()) == 2


# One of two gloo processes saving into one folder, as SpeechBrain's recipes
# do under DDP (the main process writes, every process prunes in step). The
# main process is slow to rename its checkpoint into place.
TWO_PROCESSES = """
import datetime, os, sys, time
import torch
import torch.distributed as dist
from emotion_invariant.checkpoints import AtomicCheckpointer

dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=15))
if dist.get_rank() == 0:
    rename = os.rename
    os.rename = lambda *args: (time.sleep(1), rename(*args))
saver = AtomicCheckpointer(sys.argv[1], {"model": torch.nn.Linear(2, 2)})
for eer in (0.3, 0.2, 0.1):
    saver.save_and_keep_only(meta={"EER": eer}, min_keys=["EER"])
print(sorted(c.meta["EER"] for c in saver.list_checkpoints()))
dist.destroy_process_group()
"""


def test_processes_prune_in_step(tmp_path):
    """Every DDP process lists a checkpoint only once it is in place, so
    SpeechBrain's pruning (a collective per deleted checkpoint) matches
    up on every process instead of waiting forever."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "WORLD_SIZE": "2",
        "OMP_NUM_THREADS": "1",
    }
    ranks = [
        subprocess.Popen(
            [sys.executable, "-c", TWO_PROCESSES, str(tmp_path)],
            env={**env, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    outputs = [rank.communicate(timeout=120) for rank in ranks]
    for rank, (out, err) in zip(ranks, outputs):
        assert rank.returncode == 0, err[-2000:]
        assert out.splitlines()[-1] == "[0.1]"


def test_recipe_resumes_before_a_corrupt_checkpoint(
    tiny_corpus, tmp_path, monkeypatch
):
    """The speaker recipe, its last checkpoint truncated, trains on from
    the one before."""
    argv = [
        os.path.join(
            ROOT, "hparams", "speaker_verification", "ecapa_baseline.yaml"
        ),
        f"--data_folder={tiny_corpus}",
        f"--output_folder={tmp_path}",
        *TINY_ECAPA,
        "--number_of_epochs=2",
    ]
    # Every epoch's checkpoint is kept, and nothing is scored: this is
    # about training.
    monkeypatch.setattr(
        AtomicCheckpointer, "delete_checkpoints", lambda self, **kw: None
    )
    for attempt in ("first", "restart"):
        recipe = load_recipe("speaker_verification")
        monkeypatch.setattr(recipe, "evaluate", lambda brain, hparams: None)
        recipe.main(argv)
        if attempt == "first":
            saved = AtomicCheckpointer(tmp_path / "save").list_checkpoints()
            first, last = sorted(saved, key=lambda c: c.meta["unixtime"])
            bad = last.path / "embedding_model.ckpt"
            _truncate(bad)

    log = (tmp_path / "log.txt").read_text()
    assert f"skipping a checkpoint that does not load: {bad}: " in log
    assert f"Loading a checkpoint from {first.path}\n" in log
    assert (tmp_path / "train_log.txt").read_text().count("epoch: 2,") == 2
    newest = AtomicCheckpointer(tmp_path / "save").find_checkpoint()
    assert newest.path not in (first.path, last.path)
    assert (newest.path / "counter.ckpt").read_text() == "2"
