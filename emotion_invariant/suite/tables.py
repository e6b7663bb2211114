"""The suite's tables: each task's comparison command over its finished
systems, and the README that gathers them."""

import os
import shlex
import sys


def compare_commands(plan, runs, output_folder, python=None):
    """Each task's comparison command over its finished systems.

    Arguments
    ---------
    plan : dict
    runs : list of Run
    output_folder : str
    python : str, optional

    Returns
    -------
    list of (str, list of str, list of str)
        Task, argv (writing ``OUTPUT/TASK.md``) and the systems left out
        because some of their runs, or of the runs these need, are not
        finished.

    Example
    -------
    >>> import tempfile
    >>> from emotion_invariant.suite.runs import Run
    >>> out = tempfile.mkdtemp()
    >>> plan = {"tasks": {"sv": {"compare": "cmp.py", "systems": {}}}}
    >>> a = Run("sv", "a", os.path.join(out, "a"), [], "r.json", "1", "1")
    >>> b = Run("sv", "b", os.path.join(out, "b"), [], "r.json", "1", "1")
    >>> os.makedirs(a.folder)
    >>> open(os.path.join(a.folder, "r.json"), "w").close()
    >>> task, argv, missing = compare_commands(plan, [a, b], out, "py")[0]
    >>> [os.path.basename(s) for s in argv[3:]], missing
    (['sv.md', 'a'], ['b'])
    """
    python = python or sys.executable
    out = []
    for task, spec in plan["tasks"].items():
        if not spec.get("compare"):
            continue
        systems, missing = [], []
        order = list(dict.fromkeys(r.system for r in runs if r.task == task))
        for system in order:
            mine = [r for r in runs if r.task == task and r.system == system]
            # A run whose input run is not finished (any more) would show
            # numbers of something else than its system.
            if all(
                r.finished and all(n.finished for n in r.needs) for r in mine
            ):
                systems.append(f"{system}=" + ",".join(r.folder for r in mine))
            else:
                missing.append(system)
        if systems:
            table = os.path.join(output_folder, f"{task}.md")
            argv = [python, spec["compare"], "--out", table] + systems
            out.append((task, argv, missing))
    return out


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
    made = {task: (missing, text) for task, _, missing, text in tables}
    for task in dict.fromkeys(r.task for r in runs):
        if not plan["tasks"][task].get("compare"):
            continue
        # A task none of whose systems finished has no table, but says so.
        everyone = list(dict.fromkeys(r.system for r in runs if r.task == task))
        missing, text = made.get(task, (everyone, ""))
        lines += [f"## {task}", ""]
        if missing:
            lines += [f"Not finished, left out: {', '.join(missing)}.", ""]
        if text:
            lines += [text.strip(), ""]
    return "\n".join(lines)
