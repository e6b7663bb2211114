"""Multi-process training: the recipes under torchrun, two CPU processes."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from fake_corpora import TINY_ECAPA

from emotion_invariant.distributed import DistributedBrain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = TINY_ECAPA
RUNS = {
    # SupCon alone (the AAM head unused) over P x K speaker batches, with
    # CopyPaste views and ERL.
    "sv": (
        "recipes/speaker_verification/train.py",
        "hparams/speaker_verification/ecapa_supcon_aam.yaml",
        [
            "--speakers_per_batch=2",
            "--aam_weight=0",
            "--copypaste_prob=1",
            "--erl_weight=1",
        ],
        ("train supcon", "train erl"),
    ),
    # The speaker adversary, its replay memory and the entropy loss.
    "ser": (
        "recipes/emotion_recognition/train.py",
        "hparams/emotion_recognition/ser_adversarial.yaml",
        [
            "--emo_hidden=16",
            "--adv_hidden=16",
            "--max_train_len=1.5",
            "--adv_memory=16",
            "--adv_replay=4",
        ],
        ("train adv_ce", "train replay_ce", "train entropy"),
    ),
}


class _AdversaryBrain(DistributedBrain):
    sometimes_unused = ("head",)


@pytest.mark.parametrize("task", sorted(RUNS))
def test_torchrun_two_cpu_processes(tiny_corpus, tmp_path, task):
    """Two gloo processes train in --debug; rank 0 alone writes one
    checkpoint and the report, and every method's loss is logged."""
    script, yaml, extra, logged = RUNS[task]
    out = tmp_path / task
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        os.path.join(ROOT, script),
        os.path.join(ROOT, yaml),
        "--distributed_backend=gloo",
        "--device=cpu",
        "--debug",
        f"--data_folder={tiny_corpus}",
        f"--output_folder={out}",
        *TINY,
        *extra,
    ]
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    checkpoints = [p for p in (out / "save").iterdir() if p.name[:5] == "CKPT+"]
    assert len(checkpoints) == 1
    assert (checkpoints[0] / "embedding_model.ckpt").is_file()
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report
    log = (out / "train_log.txt").read_text()
    assert log.count("epoch: 2") == 1  # rank 0 logs, once an epoch
    for term in logged:
        assert term in log


def test_cpu_modules_keep_plain_batchnorm(monkeypatch):
    """Under torchrun on a CPU, modules are wrapped in DDP with their own
    batch norm (SpeechBrain's Brain converts them to SyncBatchNorm, which
    fails there), a head not used every step looks for unused parameters,
    and the plain modules come back after training."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    torch.distributed.init_process_group("gloo", rank=0, world_size=1)
    try:
        net = torch.nn.Sequential(
            torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2)
        )
        brain = _AdversaryBrain(
            modules={"net": net, "head": torch.nn.Linear(2, 2)},
            run_opts={"device": "cpu", "distributed_backend": "gloo"},
        )
        brain._wrap_distributed()
        wrapped = brain.modules.net
        assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
        assert type(wrapped.module[1]) is torch.nn.BatchNorm1d
        assert not wrapped.find_unused_parameters
        assert brain.modules.head.find_unused_parameters
        brain.unwrap_distributed()
        assert brain.modules.net is net
    finally:
        torch.distributed.destroy_process_group()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
