"""``make demo`` reuses finished runs: a run whose ``eval/report.json`` is
there (the suite's rule) is not evaluated or trained again, and the table
is made again from what is there. Checked with ``make -n``, which prints
the commands it would run and runs none."""

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNS = ("zero_shot", "finetune/1", "finetune_ei/1")
NAMES = ("zero-shot", "fine-tuning", "emotion-invariant")

pytestmark = pytest.mark.skipif(
    shutil.which("make") is None, reason="needs GNU make"
)


def _planned(demo_dir, *extra):
    """The demo's recipe commands that ``make demo`` would run."""
    done = subprocess.run(
        ["make", "-n", "demo", f"DEMO_DIR={demo_dir}", "SEED=1", *extra],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    scripts = ("evaluate.py", "train.py", "compare.py")
    commands = done.stdout.replace("\\\n", " ").splitlines()
    return [
        " ".join(command.split())
        for command in commands
        if any(f"/{script} " in command for script in scripts)
    ]


def _finish(demo_dir, run, plain=True):
    """A finished run: its report, and the plain report of its scores
    without the back-end (``plain``)."""
    report = demo_dir / run / "eval" / "report.json"
    report.parent.mkdir(parents=True)
    report.write_text("{}")
    if plain:
        beside = report.parent / "without_backend" / "report.json"
        beside.parent.mkdir()
        beside.write_text("{}")


def test_a_first_demo_runs_everything(tmp_path):
    planned = _planned(tmp_path)
    assert [line.split()[1].rsplit("/", 1)[1] for line in planned] == [
        "evaluate.py",
        "train.py",
        "train.py",
        "compare.py",
    ]


def test_finished_runs_are_reused(tmp_path):
    _finish(tmp_path, "zero_shot")
    planned = _planned(tmp_path)
    assert not any("evaluate.py" in line for line in planned)
    assert sum("train.py" in line for line in planned) == 2
    _finish(tmp_path, "finetune/1")
    _finish(tmp_path, "finetune_ei/1")
    (compare,) = _planned(tmp_path)
    assert "compare.py" in compare
    rows = compare.split("comparison.md ")[1].split()
    assert rows == [
        row
        for run, name in zip(RUNS, NAMES)
        for row in (
            f"{name}={tmp_path / run}/eval/without_backend/report.json",
            f"{name}+backend={tmp_path / run}",
        )
    ]


def test_a_demo_run_scores_with_and_without_the_backend(tmp_path):
    """Each run is scored once with the default back-end (its evaluation
    writes the plain report beside); DEMO_BACKEND=none leaves it out."""
    planned = _planned(tmp_path)
    runs = [line for line in planned if "compare.py" not in line]
    assert all(
        "--scoring_backend=within_speaker_nap+wccn" in line for line in runs
    )
    planned = _planned(tmp_path, "DEMO_BACKEND=none")
    assert not any("--scoring_backend" in line for line in planned)
    assert planned[-1].split("comparison.md ")[1].split() == [
        f"{name}={tmp_path / run}" for run, name in zip(RUNS, NAMES)
    ]


def test_a_run_finished_without_the_backend_is_scored_again(tmp_path):
    """A run an earlier demo finished without a back-end has no plain
    report: it is scored again (its recipe resumes at the end), the others
    are reused."""
    _finish(tmp_path, "zero_shot", plain=False)
    _finish(tmp_path, "finetune/1", plain=False)
    _finish(tmp_path, "finetune_ei/1")
    planned = _planned(tmp_path)
    scripts = [line.split()[1].rsplit("/", 1)[1] for line in planned]
    assert scripts == ["evaluate.py", "train.py", "compare.py"]
    assert f"--output_folder={tmp_path}/finetune/1 " in planned[1] + " "


def test_a_run_without_its_report_runs_again(tmp_path):
    """An interrupted run (checkpoints, no report) is resumed by its
    recipe, not counted as finished."""
    _finish(tmp_path, "zero_shot")
    (tmp_path / "finetune" / "1" / "save").mkdir(parents=True)
    planned = _planned(tmp_path)
    assert any(
        f"--output_folder={tmp_path}/finetune/1" in line for line in planned
    )
