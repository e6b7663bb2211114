"""Run a suite's runs one after the other, resumably: each run folder
records the commands that made it, so a finished run is skipped, a
stopped one resumed, and a folder of other commands refused."""

import json
import logging
import os
import subprocess
import sys
import time

from tqdm import tqdm

from emotion_invariant.atomic import atomic_open
from emotion_invariant.runlock import LOCK_NAME, lock_holder
from emotion_invariant.suite.plan import SuiteError, project_root
from emotion_invariant.suite.process import Stopped, call
from emotion_invariant.suite.runs import inside

logger = logging.getLogger(__name__)

STAMP = "suite_run.json"


def _read_stamp(run):
    path = os.path.join(run.folder, STAMP)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        raise SuiteError(f"{path}: unreadable ({error})") from None


def _write_stamp(run, **extra):
    os.makedirs(run.folder, exist_ok=True)
    with atomic_open(os.path.join(run.folder, STAMP)) as f:
        json.dump({"commands": run.commands, **extra}, f, indent=1)


def run_state(run):
    """``"done"``, ``"partial"`` (started, resumable) or ``"new"``.

    A folder made by other commands (other settings, another corpus) is an
    error, not something to resume or to count as done.

    Example
    -------
    >>> import tempfile
    >>> from emotion_invariant.suite.runs import Run
    >>> run = Run("t", "s", tempfile.mkdtemp(), [["py", "a"]], "out.txt")
    >>> run_state(run)
    'new'
    >>> _write_stamp(run)
    >>> run_state(run)
    'partial'
    >>> run.commands = [["py", "b"]]
    >>> run_state(run)
    Traceback (most recent call last):
    ...
    emotion_invariant.suite.plan.SuiteError: ...made by other commands...
    """
    stamp = _read_stamp(run)
    done = os.path.isfile(os.path.join(run.folder, run.done))
    if stamp is None:
        # The lock file of a process in the folder is not a result: such a
        # run is reported as locked when its turn comes.
        if done or (
            os.path.isdir(run.folder)
            and set(os.listdir(run.folder)) - {LOCK_NAME}
        ):
            raise SuiteError(
                f"{run.folder}: holds results this suite did not start; "
                "remove it or choose another --output_folder"
            )
        return "new"
    if _portable(stamp["commands"]) != _portable(run.commands):
        raise SuiteError(
            f"{run.folder}: made by other commands than this plan's "
            f"({run.name}); remove it or choose another --output_folder"
        )
    if done and stamp.get("wall_s") is not None:
        run.wall_s = stamp["wall_s"]
        return "done"
    return "partial"


def _portable(commands):
    """Commands without the interpreter, and with the project's files
    relative to the project folder: both may move between machines (and
    a suite once wrote them relative).

    Example
    -------
    >>> root = project_root()
    >>> _portable([["py", os.path.join(root, "recipes", "a.py"),
    ...             f"--path={os.path.join(root, 'pretrained')}", "--n=1"]])
    [['recipes/a.py', '--path=pretrained', '--n=1']]
    """
    root = project_root()

    def relative(value):
        if os.path.isabs(value) and inside(value, root):
            return os.path.relpath(value, root)
        return value

    out = []
    for argv in commands:
        args = []
        for arg in argv[1:]:
            key, eq, value = arg.partition("=")
            if arg.startswith("--") and eq:
                args.append(f"{key}={relative(value)}")
            else:
                args.append(relative(arg))
        out.append(args)
    return out


def package_env(environ=None):
    """The environment a run gets: the suite's own package first on
    ``PYTHONPATH``, so every recipe it starts runs the same code as the
    suite, whatever else is installed.

    Example
    -------
    >>> env = package_env({"PYTHONPATH": "elsewhere"})
    >>> import emotion_invariant
    >>> first = env["PYTHONPATH"].split(os.pathsep)[0]
    >>> os.path.samefile(first, os.path.dirname(
    ...     os.path.dirname(emotion_invariant.__file__)))
    True
    >>> env["PYTHONPATH"].split(os.pathsep)[1]
    'elsewhere'
    """
    environ = dict(os.environ if environ is None else environ)
    paths = [project_root()] + [p for p in [environ.get("PYTHONPATH")] if p]
    environ["PYTHONPATH"] = os.pathsep.join(paths)
    return environ


def _not_ready(run, finished, unfinished, selected):
    """Why ``run`` cannot start now, or ``None``.

    ``finished``: the folders of finished runs; ``unfinished``: folder ->
    how a run of this suite did not finish; ``selected``: the folders of
    the runs of this suite.

    It cannot while a run it needs has not finished (scoring that run's
    empty folder would score some other model under its name), nor while
    another process holds its folder's lock (two processes in one folder
    mix their models).
    """
    for needed in run.needs:
        if needed.folder in finished:
            continue
        if needed.folder in unfinished:
            why = unfinished[needed.folder]
        elif needed.folder not in selected:
            why = "has not finished and is not selected in this suite run"
        else:
            why = "was not run"
        return f"it needs {needed.name}, which {why}"
    holder = lock_holder(run.folder)
    if holder is not None:
        return (
            f"{run.folder} is in use by pid {holder['pid']} "
            f"({holder['command']}) since {holder['since']}; wait for it "
            "to end or stop it"
        )
    return None


def execute(runs, stop_on_error=False, env=None):
    """Run what is not finished, one run after the other.

    Each run's output goes to ``FOLDER/suite.log``; its commands and wall
    time to ``FOLDER/suite_run.json``. A failed run is reported and the
    suite goes on to the next (``stop_on_error``: stops). A run is not
    started, and is reported so, while a run it needs
    (:attr:`~emotion_invariant.suite.runs.Run.needs`) has not finished or
    while another process holds its folder's lock
    (:mod:`emotion_invariant.runlock`).

    Each command runs in a process group of its own, stopped with the
    suite (:func:`emotion_invariant.suite.process.call`): on a
    :class:`~emotion_invariant.suite.process.Stopped` or a
    ``KeyboardInterrupt`` the run's processes are ended and the exception
    raised on, with the stopped run in ``Stopped.run``; the run resumes
    at the next call.

    Arguments
    ---------
    runs : list of Run
    stop_on_error : bool
    env : dict, optional
        The subprocesses' environment (default: :func:`package_env`).

    Returns
    -------
    list of Run
        The runs that failed or were not run, each with its ``error``.
    """
    states = [run_state(run) for run in runs]
    selected = {run.folder for run in runs}
    finished = {run.folder for run, s in zip(runs, states) if s == "done"}
    # Runs needed but not selected count when they finished before.
    for run in runs:
        for needed in run.needs:
            if needed.folder not in selected and run_state(needed) == "done":
                finished.add(needed.folder)
    todo = [run for run, state in zip(runs, states) if state != "done"]
    logger.info(
        "%d runs: %d finished, %d to run",
        len(runs),
        len(runs) - len(todo),
        len(todo),
    )
    env = package_env() if env is None else env
    failed, unfinished = [], {}
    bar = tqdm(todo, desc="suite", unit="run", dynamic_ncols=True)
    for run in bar:
        bar.set_postfix_str(run.name)
        reason = _not_ready(run, finished, unfinished, selected)
        if reason is not None:
            run.error = f"{run.name} not run: {reason}"
            how = "was not run"
        else:
            try:
                run.error = _run(run, env)
            except Stopped as stop:
                stop.run = run
                raise
            how = "failed"
        if run.error is None:
            finished.add(run.folder)
            continue
        unfinished[run.folder] = how
        failed.append(run)
        tqdm.write(f"error: {run.error}", file=sys.stderr)
        if stop_on_error:
            break
    return failed


def _run(run, env):
    """Run one run's commands; ``None``, or why it failed."""
    _write_stamp(run)
    start = time.monotonic()
    log = os.path.join(run.folder, "suite.log")
    code = 0
    with open(log, "a", encoding="utf-8") as out:
        for argv in run.commands:
            out.write("$ " + " ".join(argv) + "\n")
            out.flush()
            code = call(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
            if code:
                break
    wall = time.monotonic() - start
    if code == 0 and not run.finished:
        code = -1
    if code:
        return f"{run.name} failed (exit {code}); see {log}"
    run.wall_s = wall
    _write_stamp(run, wall_s=run.wall_s)
    return None
