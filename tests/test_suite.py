"""The measurement suite: plan expansion, resumable execution, tables."""

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from emotion_invariant.hparams import compose_hparams, resolve_hparams
from emotion_invariant.suite import (
    SuiteError,
    compare_commands,
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
    # A +nap system re-scores the run of its fold and seed, and starts
    # only once that run finished.
    for run in runs:
        if run.system.endswith("+nap") and run.seed is not None:
            base = run.system[: -len("+nap")]
            assert [(n.system, n.fold, n.seed) for n in run.needs] == [
                (base, run.fold, run.seed)
            ], run.name
    for run, _ in starts:
        assert [n.task for n in run.needs] == ["pretraining"], run.name
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


def _plan_file(tmp_path, systems, name="plan.yaml", folds="[1, 2]"):
    """A plan of ``commands`` systems: name -> the argv after the python."""
    compare = tmp_path / "compare.py"
    compare.write_text(COMPARE)
    lines = [
        "n_folds: 2",
        f"folds: {folds}",
        "seeds: [7]",
        "tasks:",
        "    toy:",
        f"        compare: {compare}",
        "        done: report.json",
        "        systems:",
    ]
    for system, argv in systems.items():
        lines += [
            f"            {system}:",
            f"                commands: [{json.dumps(argv)}]",
        ]
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _fake(tmp_path, name, *more):
    """A FAKE run's argv: it records ``name-FOLD-SEED`` in the ledger."""
    script = tmp_path / "fake.py"
    script.write_text(FAKE)
    return [str(script), "{folder}", f"{name}-{{fold}}-{{seed}}", *more]


def _args(tmp_path, plan, *more):
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    return [
        plan,
        "--corpus=toy",
        f"--data_folder={data}",
        f"--output_folder={tmp_path / 'out'}",
        *more,
    ]


def test_a_run_reading_a_failed_run_is_not_run(
    tmp_path, ledger, capsys, monkeypatch
):
    """A system that re-scores another's run (``+nap``) starts only when
    that run finished: scoring its empty folder would measure another
    model under its name."""
    needs = "{output_folder}/toy/ft/f{fold}_s{seed}/save"
    plan = _plan_file(
        tmp_path,
        {"ft": _fake(tmp_path, "ft"), "ft+nap": _fake(tmp_path, "nap", needs)},
    )
    argv = _args(tmp_path, plan)
    monkeypatch.setenv("FAIL", "ft-2-7")
    assert main(argv) == 1
    assert sorted(_ran(ledger)) == ["ft-1-7", "ft-2-7", "nap-1-7"]
    err = capsys.readouterr().err
    assert (
        "toy ft+nap fold 2 seed 7 not run: it needs toy ft fold 2 seed 7" in err
    )
    readme = (tmp_path / "out" / "README.md").read_text()
    assert "| toy | ft+nap | 1/2 |" in readme  # one of two runs finished
    # no row in its table, rather than a row of another model's numbers
    assert not re.search(r"^\| ft\+nap \| \d+ \|$", readme, flags=re.M)
    assert "left out: ft, ft+nap" in readme
    assert not (tmp_path / "out" / "toy" / "ft+nap" / "f2_s7").exists()
    monkeypatch.delenv("FAIL")
    ledger.unlink()
    assert main(argv) == 0
    assert _ran(ledger) == ["ft-2-7", "nap-2-7"]
    assert "| ft+nap | 2 |" in (tmp_path / "out" / "README.md").read_text()


def test_a_run_reading_a_later_run_is_a_plan_error(tmp_path):
    needs = "{output_folder}/toy/ft/f{fold}_s{seed}/save"
    plan = load_plan(
        _plan_file(
            tmp_path,
            {"nap": _fake(tmp_path, "nap", needs), "ft": _fake(tmp_path, "ft")},
        )
    )
    with pytest.raises(SuiteError, match="toy ft fold 1 seed 7, which runs"):
        plan_runs(plan, "toy", "data", str(tmp_path / "out"))


def test_a_dependency_left_out_by_the_selection(tmp_path, ledger, capsys):
    needs = "{output_folder}/toy/ft/f{fold}_s{seed}/save"
    plan = _plan_file(
        tmp_path,
        {"ft": _fake(tmp_path, "ft"), "ft+nap": _fake(tmp_path, "nap", needs)},
    )
    argv = _args(tmp_path, plan, "--folds", "1")
    assert main(argv + ["--systems", "ft+nap"]) == 1
    assert _ran(ledger) == []
    assert "not selected" in capsys.readouterr().err
    assert main(argv + ["--systems", "ft"]) == 0
    assert main(argv + ["--systems", "ft+nap"]) == 0  # ft is finished now
    assert _ran(ledger) == ["ft-1-7", "nap-1-7"]


@contextlib.contextmanager
def _held_by_another_process(folder):
    """Hold ``folder``'s run lock in a child process; yields its pid."""
    code = (
        "import sys\n"
        "from emotion_invariant.runlock import acquire_run_lock\n"
        "acquire_run_lock(sys.argv[1], 'test')\n"
        "print('held', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


@pytest.mark.parametrize("stop", [False, True])
def test_a_locked_run_folder_is_not_run(tmp_path, ledger, capsys, stop):
    plan = _plan_file(tmp_path, {"a": _fake(tmp_path, "a")})
    argv = _args(tmp_path, plan) + (["--stop_on_error"] if stop else [])
    busy = tmp_path / "out" / "toy" / "a" / "f1_s7"
    with _held_by_another_process(busy) as pid:
        assert main(argv) == 1
    # the other fold ran unless the suite stops at the first error
    assert _ran(ledger) == ([] if stop else ["a-2-7"])
    err = capsys.readouterr().err
    assert f"toy a fold 1 seed 7 not run: {busy} is in use by pid {pid}" in err
    assert "emotion_invariant.runlock" in err  # the holder's command
    for name in ("suite_run.json", "suite.log"):  # nothing written there
        assert not (busy / name).exists()
    assert main(argv) == 0  # free again: it runs
    assert "a-1-7" in _ran(ledger)


def test_two_suites_cannot_share_an_output_folder(tmp_path, ledger, capsys):
    plan = _plan_file(tmp_path, {"a": _fake(tmp_path, "a")})
    with _held_by_another_process(tmp_path / "out") as pid:
        assert main(_args(tmp_path, plan)) == 1
    assert f"is in use by pid {pid}" in capsys.readouterr().err
    assert _ran(ledger) == []


def test_another_plans_results_are_refused(tmp_path, ledger, capsys):
    first = _plan_file(tmp_path, {"a": _fake(tmp_path, "a")}, "first.yaml")
    second = _plan_file(tmp_path, {"b": _fake(tmp_path, "b")}, "second.yaml")
    assert main(_args(tmp_path, first)) == 0
    readme = (tmp_path / "out" / "README.md").read_text()
    for extra in ([], ["--dry_run"]):
        assert main(_args(tmp_path, second, *extra)) == 1
        err = capsys.readouterr().err
        assert "holds the results of plan" in err and "first.yaml" in err
    assert (tmp_path / "out" / "README.md").read_text() == readme
    assert _ran(ledger) == ["a-1-7", "a-2-7"]
    assert main(_args(tmp_path, first, "--folds", "1")) == 0  # its own plan


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seeds", "x"], "--seeds: 'x' is not a whole number"),
        (["--seeds", "1", "1"], "--seeds: 1 is given twice"),
        (["--folds", "1", "1"], "--folds: 1 is given twice"),
        (["--pretrained_path", "nowhere"], "nowhere: no such folder"),
    ],
)
def test_bad_selections_fail_before_anything_runs(
    tmp_path, ledger, capsys, extra, message
):
    plan = _plan_file(
        tmp_path, {"a": _fake(tmp_path, "a", "{pretrained_path}")}
    )
    for dry in ([], ["--dry_run"]):
        assert main(_args(tmp_path, plan, *extra, *dry)) == 1
        captured = capsys.readouterr()
        assert message in captured.err and captured.out == ""
    assert _ran(ledger) == []
    assert not (tmp_path / "out").exists()


def test_output_folder_that_is_a_file(tmp_path, ledger, capsys):
    plan = _plan_file(tmp_path, {"a": _fake(tmp_path, "a")})
    (tmp_path / "out").write_text("")
    assert main(_args(tmp_path, plan)) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    assert _ran(ledger) == []


@pytest.fixture
def fake_ravdess(tmp_path):
    """A 6-actor RAVDESS tree: its preparer draws folds 1 and 2."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from fake_corpora import make_ravdess

    make_ravdess(str(tmp_path / "ravdess"))
    (tmp_path / "pretrained").mkdir()
    return tmp_path / "ravdess"


def _real(tmp_path, corpus, *more):
    return [
        REAL,
        "--corpus=ravdess",
        f"--data_folder={corpus}",
        f"--output_folder={tmp_path / 'out'}",
        f"--pretrained_path={tmp_path / 'pretrained'}",
        "--dry_run",
        *more,
    ]


def test_real_plan_runs_from_any_directory(
    tmp_path, fake_ravdess, monkeypatch, capsys
):
    """Scripts and yaml files of the plan are the project's, wherever the
    suite is started from."""
    monkeypatch.chdir(tmp_path)
    assert main(_real(tmp_path, fake_ravdess)) == 0
    commands = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert commands
    for argv in commands:
        files = argv[1:3] if argv[1] != "-m" else []
        for path in files:
            assert os.path.isfile(path), path
    plan = load_plan(REAL)
    for _, argv, _ in compare_commands(
        plan, plan_runs(plan, "ravdess", "D", "O"), "O"
    ):
        assert os.path.isfile(argv[1]), argv[1]
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_folds_are_checked_against_the_corpus(tmp_path, fake_ravdess, capsys):
    assert main(_real(tmp_path, fake_ravdess, "--folds", "2", "99")) == 1
    captured = capsys.readouterr()
    assert "--folds: 99 is not a fold of ravdess" in captured.err
    assert "its folds: 1, 2" in captured.err
    assert captured.out == ""


# A recipe that starts a worker of its own, writes both pids, then trains
# (sleeps) until it is stopped.
SLEEPER = """
import os, subprocess, sys, time
pids = sys.argv[1]
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(99)"])
with open(pids + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {worker.pid}")
os.replace(pids + ".tmp", pids)
time.sleep(300)
"""


def _alive(pid):
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _poll(condition, seconds=60):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, 9])
def test_a_killed_suite_leaves_no_run_behind(tmp_path, signum):
    """However the suite ends, its run ends too: an orphaned trainer would
    go on writing into a folder that the next suite resumes."""
    sleeper = tmp_path / "sleeper.py"
    sleeper.write_text(SLEEPER)
    pids = tmp_path / "pids"
    plan = _plan_file(tmp_path, {"a": [str(sleeper), str(pids)]}, folds="[1]")
    env = dict(os.environ, PYTHONPATH=ROOT)
    suite = subprocess.Popen(
        [sys.executable, "-m", "emotion_invariant.suite"]
        + _args(tmp_path, plan),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # as from a terminal, whatever this test's own SIGINT disposition
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    started = []
    try:
        assert _poll(lambda: pids.exists() or suite.poll() is not None)
        assert pids.exists(), suite.communicate()[1]
        started = [int(p) for p in pids.read_text().split()]
        suite.send_signal(signum)
        err = suite.communicate(timeout=120)[1]
        recipe, worker = started
        assert _poll(lambda: not _alive(recipe)), "the run outlived the suite"
        if signum == 9:
            assert suite.returncode == -9
        else:
            # the whole process group of the run is stopped
            assert _poll(lambda: not _alive(worker))
            assert suite.returncode == 128 + signum
            name = signal.Signals(signum).name
            assert f"error: stopped by {name}" in err
            assert "toy a fold 1 seed 7" in err
    finally:
        for pid in started:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        if suite.poll() is None:
            suite.kill()
            suite.wait()
