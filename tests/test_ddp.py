"""Multi-process training: the recipes under torchrun, two CPU processes."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest
import torch
from fake_corpora import TINY_ECAPA

from emotion_invariant.distributed import DistributedBrain

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Seconds a torchrun run may take before the test stops it (a few on an
#: idle machine): a run that waits forever fails instead of hanging.
TIMEOUT = 600
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
    done = _run(command, tmp_path, env)
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


GROUP_SCRIPT = """
import os

import speechbrain as sb
import torch

from emotion_invariant.distributed import DistributedBrain, ddp_destroy_group


def threads():
    return set(os.listdir("/proc/self/task"))


before = threads()
run_opts = {"device": "cpu", "distributed_backend": "gloo"}
sb.utils.distributed.ddp_init_group(run_opts)
net = torch.nn.Linear(2, 2)
brain = DistributedBrain(modules={"net": net}, run_opts=run_opts)
brain._wrap_distributed()
brain.modules.net(torch.ones(3, 2)).sum().backward()
brain.unwrap_distributed()
sb.utils.distributed.main_process_only(len)("broadcast, as a recipe ends")
during = threads()
ddp_destroy_group()
print(len(during - before), len(threads() - before))
"""


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="counts threads in /proc"
)
def test_destroyed_group_leaves_no_thread(tmp_path):
    """After DDP training and a broadcast, ddp_destroy_group stops every
    thread the group started, so that the process exits without them (a
    gloo thread alive at exit can abort a finished run)."""
    script = tmp_path / "group.py"
    script.write_text(GROUP_SCRIPT)
    env = {
        **os.environ,
        "PYTHONPATH": ROOT,
        "RANK": "0",
        "LOCAL_RANK": "0",
        "WORLD_SIZE": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(_free_port()),
        "OMP_NUM_THREADS": "1",
    }
    done = _run([sys.executable, str(script)], tmp_path, env)
    assert done.returncode == 0, done.stderr[-3000:]
    started, left = map(int, done.stdout.split()[-2:])
    assert started > 0  # the group's threads were there
    assert left == 0


def _run(command, cwd, env):
    """Run ``command``; past ``TIMEOUT`` seconds, stop it and every process
    it started (torchrun's workers) and fail."""
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(f"no end after {TIMEOUT} s: {stderr[-3000:]}")
    return subprocess.CompletedProcess(
        command, process.returncode, stdout, stderr
    )


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
