"""Run a suite plan on one prepared corpus, then write its tables.

::

    python -m emotion_invariant.suite PLAN --corpus C --data_folder D
        --output_folder OUT [--folds 1 2] [--seeds 1 2 3]
        [--pretrained_path DIR] [--only TASK ...] [--systems NAME ...]
        [--dry_run]
        [--stop_on_error]

Finished runs are skipped, so the same command resumes an interrupted
suite. Writes ``OUT/<task>.md`` (each task's comparison) and
``OUT/README.md`` (every table with the corpus, folds, seeds, commands and
run times).

The plan, the selection, the corpus's folds and the published model are
checked before anything runs (``--dry_run`` included). One suite at a time
writes into ``OUT`` (it holds ``OUT``'s run lock), and ``OUT`` belongs to
one plan (``OUT/suite_plan.json``): a suite of another plan into it is
refused rather than let it replace the tables and README of the first
(keeping the old README aside would still mix two plans' runs in one
folder). Stopped by SIGTERM, SIGINT or SIGHUP, the suite stops the running
run's processes and exits with 128 + the signal's number; killed, it takes
its run down with it (Linux).
"""

import argparse
import json
import logging
import os
import shlex
import subprocess
import sys
import tempfile

from emotion_invariant.atomic import atomic_open
from emotion_invariant.runlock import RunFolderLocked, acquire_run_lock
from emotion_invariant.suite.execute import execute
from emotion_invariant.suite.plan import (
    SuiteError,
    load_plan,
    placeholders,
    project_root,
)
from emotion_invariant.suite.process import Stopped, stop_signals
from emotion_invariant.suite.runs import plan_runs
from emotion_invariant.suite.tables import compare_commands, summary

#: Which plan an output folder's results are of.
PLAN_STAMP = "suite_plan.json"


def _system(plan, run):
    return plan["tasks"][run.task]["systems"][run.system]


def check_pretrained(plan, runs, where):
    """Fail unless the published model folder the runs use is there."""
    if not any(
        "pretrained_path" in placeholders(_system(plan, r)) for r in runs
    ):
        return
    path = plan["pretrained_path"]
    if not path:
        raise SuiteError(f"{where}: none given, and the systems use it")
    if not os.path.isdir(path):
        raise SuiteError(
            f"{where}: {path}: no such folder (`make pretrained` puts the "
            "published model in pretrained/)"
        )


def check_folds(plan, runs, corpus, data_folder, where):
    """Fail unless every fold of the plan is one of the corpus's.

    Only recipes (``script`` systems) take folds from the corpus: its own
    where its preparer writes them (6 for RAVDESS), else ``n_folds`` drawn.
    The corpus is prepared into a temporary folder to read them, as every
    run prepares it (audio headers only: seconds for an emotional corpus).
    """
    recipes = [r for r in runs if "script" in _system(plan, r)]
    if plan["n_folds"] is None or not recipes:
        return
    from emotion_invariant.corpora.prepare import CORPORA, prepare
    from emotion_invariant.data.fold_manifests import fold_labels

    if corpus not in CORPORA:
        raise SuiteError(
            f"--corpus: {corpus!r} is not a corpus the recipes prepare "
            f"({', '.join(CORPORA)})"
        )
    with tempfile.TemporaryDirectory() as folder:
        try:
            prepare(corpus, data_folder, folder)
            labels = fold_labels(
                os.path.join(folder, f"{corpus}.csv"), plan["n_folds"]
            )
        except (ValueError, OSError, RuntimeError) as error:
            raise SuiteError(
                f"--data_folder: cannot prepare {corpus} from {data_folder}"
                f" to read its folds: {error}"
            ) from None
    wrong = [str(fold) for fold in plan["folds"] if str(fold) not in labels]
    if wrong:
        verb = "is not a fold" if len(wrong) == 1 else "are not folds"
        raise SuiteError(
            f"{where}: {', '.join(wrong)} {verb} of {corpus} in "
            f"{data_folder} (its folds: {', '.join(labels)})"
        )


def plan_name(path):
    """A plan as :data:`PLAN_STAMP` records it: relative to the project
    for one of its own plans, else its real path.

    Example
    -------
    >>> plan_name(os.path.join(project_root(), "hparams", "suite", "a.yaml"))
    'hparams/suite/a.yaml'
    """
    real, root = os.path.realpath(path), os.path.realpath(project_root())
    if real.startswith(root + os.sep):
        return os.path.relpath(real, root)
    return real


def _plan_in(folder):
    """The plan named in ``folder``'s :data:`PLAN_STAMP`, else in the
    command line of its ``README.md`` (written before the stamp existed;
    the plan as it was typed), else ``None``; and whether from the stamp.
    """
    stamp = os.path.join(folder, PLAN_STAMP)
    readme = os.path.join(folder, "README.md")
    if os.path.isfile(stamp):
        try:
            with open(stamp, encoding="utf-8") as f:
                return json.load(f)["plan"], True
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise SuiteError(f"{stamp}: unreadable ({error})") from None
    if not os.path.isfile(readme):
        return None, False
    try:
        with open(readme, encoding="utf-8") as f:
            for line in f:
                if line.startswith("python -m emotion_invariant.suite "):
                    for arg in shlex.split(line)[3:]:
                        if arg.endswith((".yaml", ".yml")):
                            return arg, False
    except (OSError, ValueError):
        pass
    raise SuiteError(
        f"{readme}: not the README of a suite; choose another --output_folder"
    )


def check_plan_of(folder, plan):
    """Fail when ``folder`` holds the results of another plan than
    ``plan``."""
    mine = plan_name(plan)
    theirs, exact = _plan_in(folder)
    if theirs is None:
        return
    if exact:
        same = theirs == mine
    else:
        same = os.path.basename(theirs) == os.path.basename(mine)
    if not same:
        raise SuiteError(
            f"{folder} holds the results of plan {theirs}, not {mine}: "
            "choose another --output_folder (their tables and README.md "
            "would replace each other)"
        )


def main(argv=None):
    """Entry point; returns the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("plan", help="suite plan (hparams/suite/*.yaml)")
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--data_folder", required=True)
    parser.add_argument("--output_folder", required=True)
    parser.add_argument("--folds", nargs="+", help="replace the plan's folds")
    parser.add_argument("--seeds", nargs="+", help="replace the plan's seeds")
    parser.add_argument(
        "--pretrained_path", help="replace the plan's published model folder"
    )
    parser.add_argument("--only", nargs="+", help="run only these tasks")
    parser.add_argument(
        "--systems", nargs="+", help="run only these systems (any task)"
    )
    parser.add_argument("--dry_run", action="store_true")
    parser.add_argument("--stop_on_error", action="store_true")
    args = parser.parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        with stop_signals():
            failed = _run_suite(args)
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Stopped as stop:
        during = f" during {stop.run.name}" if stop.run else ""
        print(
            f"error: stopped by {stop.name}{during}, and its processes "
            "with it; the same command resumes the suite",
            file=sys.stderr,
        )
        return 128 + stop.signum
    if failed:
        print(
            f"error: {len(failed)} run(s) did not finish: "
            + "; ".join(run.name for run in failed),
            file=sys.stderr,
        )
        return 1
    return 0


def _run_suite(args):
    """Check everything, run the plan, write the tables.

    Returns
    -------
    list of Run
        The runs that failed or were not run.
    """
    plan = load_plan(
        args.plan,
        {
            "folds": args.folds,
            "seeds": args.seeds,
            "pretrained_path": args.pretrained_path,
        },
    )
    tasks, systems = _selection(plan, args)
    if not os.path.isdir(args.data_folder):
        raise SuiteError(f"{args.data_folder}: no such data folder")
    out = args.output_folder
    if os.path.exists(out) and not os.path.isdir(out):
        raise SuiteError(f"--output_folder: {out} is a file, not a folder")
    # The whole plan is expanded, so that a selected run knows the runs
    # it needs even when they are not selected.
    runs = [
        run
        for run in plan_runs(plan, args.corpus, args.data_folder, out)
        if run.task in tasks and run.system in systems
    ]
    check_pretrained(
        plan,
        runs,
        "--pretrained_path"
        if args.pretrained_path
        else f"{args.plan}: pretrained_path",
    )
    check_folds(
        plan,
        runs,
        args.corpus,
        args.data_folder,
        "--folds" if args.folds else f"{args.plan}: folds",
    )
    check_plan_of(out, args.plan)
    if args.dry_run:
        for run in runs:
            for command in run.commands:
                print(" ".join(shlex.quote(a) for a in command))
        return []
    try:
        lock = acquire_run_lock(out, purpose="suite")
    except RunFolderLocked as error:
        raise SuiteError(str(error)) from None
    except OSError as error:
        raise SuiteError(
            f"--output_folder: cannot write in {out}: {error}"
        ) from None
    with lock:
        check_plan_of(out, args.plan)  # again, now that no suite can write
        stamp = os.path.join(out, PLAN_STAMP)
        if not os.path.isfile(stamp):
            with atomic_open(stamp) as f:
                json.dump({"plan": plan_name(args.plan)}, f)
        failed = execute(runs, stop_on_error=args.stop_on_error)
        tables = []
        for task, command, missing in compare_commands(plan, runs, out):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise SuiteError(
                    f"{task}: the comparison failed: "
                    + (result.stderr.strip().splitlines() or ["?"])[-1]
                )
            with open(command[3], encoding="utf-8") as f:
                tables.append((task, command, missing, f.read()))
        path = os.path.join(out, "README.md")
        with atomic_open(path) as f:
            f.write(summary(plan, runs, args, tables))
        print(f"wrote {path}")
    return failed


def _selection(plan, args):
    """The tasks and systems ``--only`` and ``--systems`` select."""
    tasks = _chosen("--only", "task", args.only, list(plan["tasks"]), args)
    systems = sorted(
        {name for task in tasks for name in plan["tasks"][task]["systems"]}
    )
    return tasks, _chosen("--systems", "system", args.systems, systems, args)


def _chosen(option, noun, asked, known, args):
    """The names ``option`` asked for (all ``known`` ones if none), each
    checked to be known.

    Example
    -------
    >>> args = argparse.Namespace(plan="p.yaml")
    >>> sorted(_chosen("--only", "task", None, ["sv", "ser"], args))
    ['ser', 'sv']
    >>> _chosen("--only", "task", ["sv", "x"], ["sv", "ser"], args)
    Traceback (most recent call last):
    ...
    emotion_invariant.suite.plan.SuiteError: --only: no task x in p.yaml \
(tasks: sv, ser)
    """
    if not asked:
        return set(known)
    unknown = sorted(set(asked) - set(known))
    if unknown:
        raise SuiteError(
            f"{option}: no {noun} {', '.join(unknown)} in {args.plan} "
            f"({noun}s: {', '.join(known)})"
        )
    return set(asked)


if __name__ == "__main__":
    sys.exit(main())
