"""The measurement suite: plan expansion, resumable execution, tables."""

import json
import os
import re

import pytest

from emotion_invariant.hparams import compose_hparams, resolve_hparams
from emotion_invariant.suite import (
    SuiteError,
    execute,
    load_plan,
    plan_runs,
)
from emotion_invariant.suite.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REAL = os.path.join(ROOT, "hparams", "suite", "real.yaml")

# A run that appends its name to a ledger and writes its done file; it
# fails when its name is in FAIL.
FAKE = """
import os, sys
folder, name = sys.argv[1], sys.argv[2]
with open(os.environ["LEDGER"], "a") as f:
    f.write(name + "\\n")
if name in os.environ.get("FAIL", "").split(","):
    sys.exit(3)
os.makedirs(folder, exist_ok=True)
with open(os.path.join(folder, "report.json"), "w") as f:
    f.write("{}")
"""

COMPARE = """
import sys
out, systems = sys.argv[2], sys.argv[3:]
with open(out, "w") as f:
    f.write("| system | runs |\\n|---|---:|\\n")
    for spec in systems:
        name, runs = spec.split("=")
        f.write(f"| {name} | {len(runs.split(','))} |\\n")
"""


def _top_keys(path):
    return set(re.findall(r"^(\w+):", compose_hparams(path), flags=re.M))


def test_real_plan_names_existing_recipes_and_keys():
    """Every script, yaml and override key of the real-speech plan exists
    (a misspelt key would otherwise fail one run hours into the suite)."""
    plan = load_plan(REAL)
    runs = plan_runs(plan, "ravdess", "DATA", "OUT", python="py")
    assert {r.task for r in runs} == set(plan["tasks"])
    folds, seeds = len(plan["folds"]), len(plan["seeds"])
    for system, spec in plan["tasks"]["speaker_verification"][
        "systems"
    ].items():
        n = sum(r.system == system for r in runs)
        # an unseeded system (zero-shot) runs once per fold
        assert n == folds * (seeds if spec.get("seeded", True) else 1), system
    # An emotion run covers the plan's folds, the same as the verification's.
    listed = "--fold=" + ",".join(map(str, plan["folds"]))
    for run in runs:
        if run.task == "emotion_recognition":
            assert listed in run.commands[0], run.name
    # A fine-tuning after pretraining reads what its pretraining run
    # writes: the same fold and seed, the file the suite waits for.
    written = {
        os.path.join(r.folder, r.done): r
        for r in runs
        if r.task == "pretraining"
    }
    starts = [
        (run, arg.split("=", 1)[1])
        for run in runs
        if run.task == "pretraining_finetune"
        for arg in run.commands[0]
        if arg.startswith("--pretrained_encoder=")
    ]
    assert starts
    for run, path in starts:
        source = written[path]
        assert (source.fold, source.seed) == (run.fold, run.seed), run.name
    for run in runs:
        for argv in run.commands:
            if argv[1] == "-m":
                continue
            script, yaml = argv[1], argv[2]
            assert os.path.isfile(os.path.join(ROOT, script)), script
            base, chain = resolve_hparams(os.path.join(ROOT, yaml))
            known = _top_keys(base) | set(chain)
            for arg in argv[3:]:
                key = arg[2:].split("=", 1)[0]
                assert key in known, f"{run.name}: {key} is not in {yaml}"


def _fake_plan(tmp_path, systems):
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    compare = tmp_path / "compare.py"
    compare.write_text(COMPARE)
    plan = tmp_path / "plan.yaml"
    lines = [
        "n_folds: 2",
        "folds: [1, 2]",
        "seeds: [7]",
        "tasks:",
        "    toy:",
        f"        compare: {compare}",
        "        done: report.json",
        "        systems:",
    ]
    for name in systems:
        lines += [
            f"            {name}:",
            f"                commands: [[{script}, '{{folder}}', "
            f"'{name}-{{fold}}-{{seed}}']]",
        ]
    plan.write_text("\n".join(lines) + "\n")
    return str(plan)


@pytest.fixture
def ledger(tmp_path, monkeypatch):
    path = tmp_path / "ledger.txt"
    monkeypatch.setenv("LEDGER", str(path))
    monkeypatch.delenv("FAIL", raising=False)
    return path


def _ran(ledger):
    return ledger.read_text().split() if ledger.exists() else []


def test_suite_runs_each_run_once_and_resumes(tmp_path, ledger, monkeypatch):
    plan = _fake_plan(tmp_path, ["a", "b"])
    data = tmp_path / "data"
    data.mkdir()
    out = tmp_path / "out"
    argv = [plan, "--corpus=toy", f"--data_folder={data}"]
    argv += [f"--output_folder={out}"]
    monkeypatch.setenv("FAIL", "b-2-7")
    assert main(argv) == 1  # one run failed: non-zero, the others ran
    assert sorted(_ran(ledger)) == ["a-1-7", "a-2-7", "b-1-7", "b-2-7"]
    readme = (out / "README.md").read_text()
    assert "| a | 2 |" in readme  # a's table row over both folds
    assert "left out: b" in readme
    monkeypatch.delenv("FAIL")
    ledger.unlink()
    assert main(argv) == 0
    assert _ran(ledger) == ["b-2-7"]  # only the failed run again
    assert "| b | 2 |" in (out / "README.md").read_text()
    stamp = json.loads(
        (out / "toy" / "a" / "f1_s7" / "suite_run.json").read_text()
    )
    assert stamp["wall_s"] >= 0
    ledger.unlink()
    assert main(argv) == 0
    assert _ran(ledger) == []  # everything finished: nothing runs


def test_suite_refuses_a_folder_made_with_other_commands(tmp_path, ledger):
    plan = load_plan(_fake_plan(tmp_path, ["a"]))
    out = str(tmp_path / "out")
    runs = plan_runs(plan, "toy", "data", out)
    assert execute(runs) == []
    other = plan_runs(plan, "other_corpus", "data", out)
    for run in other:
        run.commands = [run.commands[0] + ["--lr=1"]]
    with pytest.raises(SuiteError, match="made by other commands"):
        execute(other)


def test_suite_refuses_results_it_did_not_start(tmp_path, ledger):
    plan = load_plan(_fake_plan(tmp_path, ["a"]))
    out = tmp_path / "out"
    stray = out / "toy" / "a" / "f1_s7"
    stray.mkdir(parents=True)
    (stray / "report.json").write_text("{}")
    runs = plan_runs(plan, "toy", "data", str(out))
    with pytest.raises(SuiteError, match="did not start"):
        execute(runs)
    assert _ran(ledger) == []


def test_suite_selects_folds_seeds_and_tasks(tmp_path, ledger, capsys):
    plan = _fake_plan(tmp_path, ["a"])
    data = tmp_path / "data"
    data.mkdir()
    argv = [plan, "--corpus=toy", f"--data_folder={data}"]
    argv += [f"--output_folder={tmp_path / 'out'}", "--dry_run"]
    assert main(argv + ["--folds", "2", "--seeds", "1", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert [line.split()[-1] for line in printed] == ["a-2-1", "a-2-3"]
    assert main(argv + ["--only", "nope"]) == 1
    assert "no task nope" in capsys.readouterr().err
    assert main(argv + ["--systems", "nope"]) == 1
    assert "no system nope" in capsys.readouterr().err
    assert _ran(ledger) == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("folds: [1]\nseeds: []\n", "seeds must be a non-empty list"),
        ("folds: [1]\nseeds: [1]\nfold: 2\n", "unknown key"),
        (
            "folds: [1]\nseeds: [1]\ntasks:\n  t:\n    done: x\n"
            "    systems:\n      s: {hparams: a.yaml}\n",
            "either script",
        ),
    ],
)
def test_bad_plans_are_refused_with_the_file_named(tmp_path, text, message):
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    with pytest.raises(SuiteError, match=message) as error:
        load_plan(str(path))
    assert str(path) in str(error.value)


def test_missing_data_folder_is_an_error(tmp_path, capsys):
    plan = _fake_plan(tmp_path, ["a"])
    argv = [plan, "--corpus=toy", f"--data_folder={tmp_path / 'none'}"]
    assert main(argv + [f"--output_folder={tmp_path / 'out'}"]) == 1
    assert "no such data folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
