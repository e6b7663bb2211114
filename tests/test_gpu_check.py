"""scripts/gpu_check.sh, proven on the CPU before a GPU minute is spent on
it: its steps (training under torchrun, export, verify; scoring speed) run
with GPU_CHECK_DEVICE=cpu, a tiny corpus and model, and small scoring runs.
The chain that exports what was trained runs end to end in one test, the
scoring step in another, each well under 30 s."""

import os
import subprocess
import sys

from fake_corpora import TINY_ECAPA

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "gpu_check.sh")
SMALL_SCORING = (
    "--utterances 200 --cohort 200 --topk 20 --loop-trials 10 "
    "--snorm-loop-trials 10 --sb-eer-scores 1000 --sb-mindcf-scores 1000"
)


def _run(out, steps, corpus, *args, device="cpu"):
    env = {
        **os.environ,
        "GPU_CHECK_DEVICE": device,
        "STEPS": steps,
        "OUT": str(out),
        "PY": sys.executable,
        "CORPUS": str(corpus),
        "TRIALS": "1000",
        "BENCH_ARGS": SMALL_SCORING,
        "PYTHONPATH": ROOT,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
    }
    return subprocess.run(
        ["bash", SCRIPT, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_train_export_verify_on_the_cpu(tiny_corpus, tmp_path):
    out = tmp_path / "check"
    done = _run(out, "train export verify", tiny_corpus, *TINY_ECAPA)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "torchrun: " in done.stderr
    # one epoch, not --debug: a checkpoint to export
    assert list((out / "sv" / "save").glob("CKPT+*"))
    for name in ("hyperparams.yaml", "embedding_model.ckpt"):
        assert (out / "model" / name).is_file(), name
    (verdict,) = [
        line
        for line in done.stdout.splitlines()
        if line.endswith(("\tsame", "\tdifferent"))
    ]
    assert verdict.startswith(str(tiny_corpus))
    assert not list(out.glob("scoring_*"))


def test_scoring_on_the_cpu(tmp_path):
    out = tmp_path / "check"
    done = _run(out, "scoring", tmp_path / "no_corpus")
    assert done.returncode == 0, done.stderr[-3000:]
    scoring = (out / "scoring_1000.txt").read_text()
    assert "device cpu" in scoring
    assert "cosine scoring: 1000 trials" in scoring
    assert not (out / "sv").exists()
    assert not (tmp_path / "no_corpus").exists()


def test_an_unknown_device_is_refused(tmp_path):
    done = _run(tmp_path / "check", "train", tmp_path, device="gpu")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: GPU_CHECK_DEVICE=gpu; expected cuda or cpu"
    )
    assert not (tmp_path / "check").exists()
