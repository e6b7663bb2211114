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
"""

import argparse
import logging
import os
import shlex
import subprocess
import sys

from emotion_invariant.suite.plan import (
    SuiteError,
    compare_commands,
    execute,
    load_plan,
    plan_runs,
)
from emotion_invariant.utils import atomic_open


def _minutes(seconds):
    return f"{seconds / 60:.1f} min"


def summary(plan, runs, args, tables):
    """The suite's README: settings, per-system time, and every table.

    Arguments
    ---------
    plan : dict
    runs : list of Run
    args : argparse.Namespace
    tables : list of (str, list of str, list of str, str)
        Task, comparison argv, systems left out, the table's text.

    Returns
    -------
    str
    """
    data = os.path.basename(os.path.normpath(args.data_folder))
    lines = [
        f"# {args.corpus}: every method, over speaker folds and seeds",
        "",
        f"Corpus `{args.corpus}` (data folder `{data}`), speaker-disjoint "
        f"folds (the corpus's own, else {plan['n_folds']} drawn), folds run: "
        f"{', '.join(map(str, plan['folds']))}; seeds "
        f"{', '.join(map(str, plan['seeds']))}. Command:",
        "",
        "```bash",
        "python -m emotion_invariant.suite "
        + " ".join(shlex.quote(a) for a in args.argv),
        "```",
        "",
        "| task | system | runs finished | run time |",
        "|---|---|---:|---:|",
    ]
    total = 0.0
    for task, system in dict.fromkeys((r.task, r.system) for r in runs):
        mine = [r for r in runs if (r.task, r.system) == (task, system)]
        done = [r for r in mine if r.wall_s is not None]
        seconds = sum(r.wall_s for r in done)
        total += seconds
        lines.append(
            f"| {task} | {system} | {len(done)}/{len(mine)} | "
            f"{_minutes(seconds)} |"
        )
    lines += ["", f"Total run time: {_minutes(total)}.", ""]
    for task, _command, missing, text in tables:
        lines += [f"## {task}", ""]
        if missing:
            lines += [f"Not finished, left out: {', '.join(missing)}.", ""]
        lines += [text.strip(), ""]
    return "\n".join(lines)


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
        plan = load_plan(
            args.plan,
            {
                "folds": args.folds,
                "seeds": args.seeds,
                "pretrained_path": args.pretrained_path,
            },
        )
        if args.only:
            unknown = sorted(set(args.only) - set(plan["tasks"]))
            if unknown:
                raise SuiteError(
                    f"--only: no task {', '.join(unknown)} in {args.plan} "
                    f"(tasks: {', '.join(plan['tasks'])})"
                )
            plan["tasks"] = {
                k: v for k, v in plan["tasks"].items() if k in args.only
            }
        if args.systems:
            known = {
                name
                for spec in plan["tasks"].values()
                for name in spec["systems"]
            }
            unknown = sorted(set(args.systems) - known)
            if unknown:
                raise SuiteError(
                    f"--systems: no system {', '.join(unknown)} in "
                    f"{args.plan} (systems: {', '.join(sorted(known))})"
                )
            for spec in plan["tasks"].values():
                spec["systems"] = {
                    k: v
                    for k, v in spec["systems"].items()
                    if k in args.systems
                }
            plan["tasks"] = {
                k: v for k, v in plan["tasks"].items() if v["systems"]
            }
        if not os.path.isdir(args.data_folder):
            raise SuiteError(f"{args.data_folder}: no such data folder")
        runs = plan_runs(
            plan, args.corpus, args.data_folder, args.output_folder
        )
        if args.dry_run:
            for run in runs:
                for command in run.commands:
                    print(" ".join(shlex.quote(a) for a in command))
            return 0
        failed = execute(runs, stop_on_error=args.stop_on_error)
        tables = []
        for task, command, missing in compare_commands(
            plan, runs, args.output_folder
        ):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode:
                raise SuiteError(
                    f"{task}: the comparison failed: "
                    + (result.stderr.strip().splitlines() or ["?"])[-1]
                )
            with open(command[3], encoding="utf-8") as f:
                tables.append((task, command, missing, f.read()))
        path = os.path.join(args.output_folder, "README.md")
        with atomic_open(path) as f:
            f.write(summary(plan, runs, args, tables))
        print(f"wrote {path}")
    except SuiteError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if failed:
        print(
            f"error: {len(failed)} run(s) failed: "
            + "; ".join(run.name for run in failed),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
