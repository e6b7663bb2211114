"""Expand a suite plan into runs, run them resumably, and compare them."""

import json
import logging
import os
import re
import string
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml
from tqdm import tqdm

from emotion_invariant.atomic import atomic_open
from emotion_invariant.runlock import LOCK_NAME, lock_holder
from emotion_invariant.suite.process import Stopped, call

logger = logging.getLogger(__name__)

STAMP = "suite_run.json"
TOP_KEYS = {"n_folds", "folds", "seeds", "pretrained_path", "tasks"}
TASK_KEYS = {"compare", "done", "per_fold", "seeded", "systems", "script"}
TASK_KEYS |= {"hparams_dir"}
SYSTEM_KEYS = {"script", "hparams", "overrides", "commands", "per_fold"}
SYSTEM_KEYS |= {"seeded", "done"}


class SuiteError(ValueError):
    """A plan, a run folder or a run that cannot be used as asked."""


@dataclass
class Run:
    """One subprocess (or a short sequence of them) of a suite.

    Arguments
    ---------
    task : str
        The task it belongs to (``speaker_verification``...).
    system : str
        The system's name in the task's table.
    folder : str
        Its output folder.
    commands : list of list of str
        The argv of each command, run in order.
    done : str
        The file whose presence means the run finished.
    fold, seed : str or None
        Where it sits in the grid (None: not per fold / not seeded).
    wall_s : float or None
        Its run time, once finished.
    needs : list of Run
        The earlier runs whose folders it reads (see :func:`plan_runs`).
    error : str or None
        Why it failed or was not run, after :func:`execute`.
    """

    task: str
    system: str
    folder: str
    commands: list
    done: str
    fold: str = None
    seed: str = None
    wall_s: float = field(default=None, compare=False)
    needs: list = field(default_factory=list, compare=False, repr=False)
    error: str = field(default=None, compare=False)

    @property
    def name(self):
        """``task/system`` with its fold and seed."""
        parts = [self.task, self.system]
        if self.fold is not None:
            parts.append(f"fold {self.fold}")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " ".join(parts)


def project_root():
    """The project's folder: the one holding the ``emotion_invariant``
    package, ``recipes/`` and ``hparams/``.

    Example
    -------
    >>> os.path.isdir(os.path.join(project_root(), "emotion_invariant"))
    True
    """
    import emotion_invariant

    return os.path.dirname(
        os.path.dirname(os.path.abspath(emotion_invariant.__file__))
    )


def _project_file(where, key, path, root):
    """``path`` read from the project folder, checked to exist."""
    full = os.path.join(root, path)
    if not os.path.isfile(full):
        raise SuiteError(
            f"{where}: {key} {path}: no such file (a relative path in a "
            f"plan is read from the project folder, {root})"
        )
    return full


def _check_grid(where, key, values):
    """Folds and seeds: a non-empty list of distinct labels; a seed is a
    whole number, a fold a word (it names folders, and a list of folds is
    passed comma-separated)."""
    if not isinstance(values, list) or not values:
        raise SuiteError(f"{where} must be a non-empty list")
    pattern, kind = {
        "seeds": (r"[0-9]+", "a whole number"),
        "folds": (r"[A-Za-z0-9_]+", "a fold label (letters, digits, _)"),
    }[key]
    seen = set()
    for value in values:
        text = str(value)
        if isinstance(value, bool) or not re.fullmatch(pattern, text):
            raise SuiteError(f"{where}: {value!r} is not {kind}")
        if text in seen:
            raise SuiteError(f"{where}: {text} is given twice")
        seen.add(text)


def _check_keys(where, mapping, allowed):
    if not isinstance(mapping, dict):
        raise SuiteError(f"{where}: expected a mapping, got {mapping!r}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise SuiteError(
            f"{where}: unknown key(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def load_plan(path, overrides=None):
    """Read and check a plan file.

    The scripts, yaml files and comparison scripts it names and its
    ``pretrained_path``, when relative, are the project's (read from
    :func:`project_root`), so a suite runs the same from any folder; they
    are checked to exist here, before anything runs. The folds and seeds
    are checked too (distinct labels, whole-number seeds).

    Arguments
    ---------
    path : str
        A yaml file: ``n_folds``, ``folds``, ``seeds``, ``pretrained_path``
        and ``tasks`` (task -> ``compare``, ``done``, ``systems``).
    overrides : dict, optional
        Top-level values replacing the file's (``folds``, ``seeds``...),
        from the command line: an error names them ``--folds``..., and a
        relative ``pretrained_path`` is kept as given (the current folder's).

    Returns
    -------
    dict

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "plan.yaml")
    >>> with open(path, "w") as f:
    ...     _ = f.write("folds: [1]\\nseeds: [1]\\nn_folds: 2\\ntasks: {}\\n")
    >>> load_plan(path, {"seeds": [1, 2]})["seeds"]
    [1, 2]
    >>> with open(path, "w") as f:
    ...     _ = f.write("folds: [1]\\nseed: [1]\\n")
    >>> load_plan(path)
    Traceback (most recent call last):
    ...
    emotion_invariant.suite.plan.SuiteError: ...unknown key(s) seed...
    >>> with open(path, "w") as f:
    ...     _ = f.write("folds: [1]\\nseeds: [1]\\ntasks: {}\\n")
    >>> load_plan(path, {"seeds": ["1", "x"]})
    Traceback (most recent call last):
    ...
    emotion_invariant.suite.plan.SuiteError: --seeds: 'x' is not a whole number
    """
    try:
        with open(path, encoding="utf-8") as f:
            plan = yaml.safe_load(f) or {}
    except OSError as error:
        raise SuiteError(f"{path}: cannot read the plan: {error}") from None
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid yaml: {error}") from None
    _check_keys(path, plan, TOP_KEYS)
    root = project_root()
    plan = {"n_folds": None, "pretrained_path": None, "tasks": {}, **plan}
    if plan["pretrained_path"]:
        plan["pretrained_path"] = os.path.join(root, plan["pretrained_path"])
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    plan.update(given)
    for key in ("folds", "seeds"):
        where = f"--{key}" if key in given else f"{path}: {key}"
        _check_grid(where, key, plan.get(key))
    for task, spec in plan["tasks"].items():
        _check_keys(f"{path}: task {task}", spec, TASK_KEYS)
        if not spec.get("systems"):
            raise SuiteError(f"{path}: task {task} has no systems")
        for name, system in spec["systems"].items():
            where = f"{path}: {task}/{name}"
            _check_keys(where, system, SYSTEM_KEYS)
            if "commands" not in system:
                system.setdefault("script", spec.get("script"))
                if spec.get("hparams_dir") and "hparams" in system:
                    system["hparams"] = os.path.join(
                        spec["hparams_dir"], system["hparams"]
                    )
            if ("commands" in system) == bool(system.get("script")):
                raise SuiteError(
                    f"{where}: give either script (+ hparams) or commands"
                )
            if "script" in system and "hparams" not in system:
                raise SuiteError(f"{where}: script without hparams")
            if not (system.get("done") or spec.get("done")):
                raise SuiteError(f"{where}: no done file named")
            for key in ("script", "hparams"):
                if key in system:
                    system[key] = _project_file(where, key, system[key], root)
        if spec.get("compare"):
            spec["compare"] = _project_file(
                f"{path}: task {task}", "compare", spec["compare"], root
            )
    return plan


def placeholders(entry):
    """The ``{names}`` a plan system's overrides and commands use.

    Example
    -------
    >>> sorted(placeholders({"overrides": {"a": "{pretrained_path}/x"},
    ...                      "commands": [["-m", "m", "{folder}"]]}))
    ['folder', 'pretrained_path']
    """
    values = list((entry.get("overrides") or {}).values())
    values += [arg for argv in entry.get("commands") or [] for arg in argv]
    return {
        name
        for value in values
        if isinstance(value, str)
        for _, name, _, _ in string.Formatter().parse(value)
        if name
    }


def _fill(value, variables):
    if isinstance(value, str):
        try:
            return value.format(**variables)
        except KeyError as error:
            raise SuiteError(
                f"unknown placeholder {{{error.args[0]}}} in {value!r} "
                f"(known: {', '.join(sorted(variables))})"
            ) from None
    return value


def _flag(key, value):
    if isinstance(value, list):
        value = json.dumps(value)
    return f"--{key}={value}"


def plan_runs(plan, corpus, data_folder, output_folder, python=None):
    """Every run of a plan, in the order they run.

    Each system runs once per fold and seed (``per_fold: false``: once per
    seed, over the plan's folds, ``--fold=1,2``; ``seeded: false``: once per
    fold). A recipe
    system's command is ``python SCRIPT HPARAMS --corpus --data_folder
    --output_folder [--fold --n_folds] [--seed] --KEY=VALUE...``; a
    ``commands`` system runs its argv lists as given. Strings may use
    ``{corpus}``, ``{data_folder}``, ``{folder}`` (the run's folder),
    ``{output_folder}``, ``{pretrained_path}``, ``{n_folds}``, ``{fold}``
    and ``{seed}``, and so may the ``done`` file.

    A run whose arguments name a path inside another run's folder (a
    ``+nap`` system re-scoring ``{output_folder}/TASK/SYSTEM/f{fold}_s{seed}
    /save``, a fine-tuning from a pretraining's encoder) needs that run
    (:attr:`Run.needs`): :func:`execute` starts it only once that run
    finished, which therefore has to come first in the plan.

    Arguments
    ---------
    plan : dict
        From :func:`load_plan`.
    corpus, data_folder, output_folder : str
        The prepared corpus's name, its root, and where the suite writes.
    python : str, optional
        The interpreter (default: this one).

    Returns
    -------
    list of Run

    Example
    -------
    >>> plan = {"folds": [1, 2], "seeds": [1], "n_folds": 4,
    ...         "pretrained_path": "pre", "tasks": {"sv": {
    ...             "done": "eval/report.json", "systems": {
    ...                 "zero-shot": {"script": "ev.py", "hparams": "a.yaml",
    ...                               "seeded": False},
    ...                 "ft": {"script": "tr.py", "hparams": "a.yaml",
    ...                        "overrides": {"lr": 0.001}}}}}}
    >>> runs = plan_runs(plan, "ravdess", "data", "out", python="py")
    >>> [run.name for run in runs]
    ['sv zero-shot fold 1', 'sv zero-shot fold 2', 'sv ft fold 1 seed 1', \
'sv ft fold 2 seed 1']
    >>> runs[-1].commands[0][2:]
    ['a.yaml', '--corpus=ravdess', '--data_folder=data', \
'--output_folder=out/sv/ft/f2_s1', '--fold=2', '--n_folds=4', '--seed=1', \
'--lr=0.001']
    >>> plan["tasks"]["sv"]["systems"]["ft+nap"] = {"script": "ev.py",
    ...     "hparams": "a.yaml", "overrides": {
    ...         "save_folder": "{output_folder}/sv/ft/f{fold}_s{seed}/save"}}
    >>> runs = plan_runs(plan, "ravdess", "data", "out", python="py")
    >>> [needed.name for needed in runs[-1].needs]
    ['sv ft fold 2 seed 1']
    """
    python = python or sys.executable
    runs = []
    for task, spec in plan["tasks"].items():
        for system, entry in spec["systems"].items():
            per_fold = entry.get("per_fold", spec.get("per_fold", True))
            seeded = entry.get("seeded", spec.get("seeded", True))
            folds = plan["folds"] if per_fold else [None]
            seeds = plan["seeds"] if seeded else [None]
            for fold in folds:
                for seed in seeds:
                    tag = "_".join(
                        part
                        for part in (
                            None if fold is None else f"f{fold}",
                            None if seed is None else f"s{seed}",
                        )
                        if part
                    )
                    folder = os.path.join(output_folder, task, system, tag)
                    folder = folder.rstrip(os.sep)
                    variables = {
                        "corpus": corpus,
                        "data_folder": data_folder,
                        "output_folder": output_folder,
                        "folder": folder,
                        "pretrained_path": plan["pretrained_path"],
                        "n_folds": plan["n_folds"],
                        "fold": (
                            fold
                            if fold is not None
                            else ",".join(map(str, plan["folds"]))
                        ),
                        "seed": seed,
                    }
                    runs.append(
                        Run(
                            task=task,
                            system=system,
                            folder=folder,
                            commands=_commands(entry, variables, python),
                            done=_fill(
                                entry.get("done", spec.get("done")), variables
                            ),
                            fold=None if fold is None else str(fold),
                            seed=None if seed is None else str(seed),
                        )
                    )
    _link(runs)
    return runs


def _inside(path, folder):
    """Whether ``path`` is ``folder`` or lies inside it (no file read)."""
    path, folder = os.path.normpath(path), os.path.normpath(folder)
    return path == folder or path.startswith(folder + os.sep)


def _paths(run):
    """The values of a run's arguments (``--key=VALUE`` or ``VALUE``)
    that are not inside its own folder."""
    for argv in run.commands:
        for arg in argv[1:]:
            key, eq, value = arg.partition("=")
            if not (arg.startswith("--") and eq):
                value = arg
            if value and not _inside(value, run.folder):
                yield value


def _link(runs):
    """Fill each run's ``needs``: the runs whose folders it reads."""
    for index, run in enumerate(runs):
        for value in _paths(run):
            for other_index, other in enumerate(runs):
                if other is run or not _inside(value, other.folder):
                    continue
                if other_index > index:
                    raise SuiteError(
                        f"{run.name} reads {value}, the folder of "
                        f"{other.name}, which runs after it: put "
                        f"{other.task}/{other.system} before "
                        f"{run.task}/{run.system} in the plan"
                    )
                if all(known is not other for known in run.needs):
                    run.needs.append(other)


def _commands(entry, variables, python):
    if "commands" in entry:
        return [
            [python] + [str(_fill(arg, variables)) for arg in argv]
            for argv in entry["commands"]
        ]
    argv = [python, entry["script"], entry["hparams"]]
    argv += [
        f"--corpus={variables['corpus']}",
        f"--data_folder={variables['data_folder']}",
        f"--output_folder={variables['folder']}",
    ]
    if variables["n_folds"] is not None:
        argv += [
            f"--fold={variables['fold']}",
            f"--n_folds={variables['n_folds']}",
        ]
    if variables["seed"] is not None:
        argv.append(f"--seed={variables['seed']}")
    for key, value in (entry.get("overrides") or {}).items():
        argv.append(_flag(key, _fill(value, variables)))
    return [argv]


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
        if os.path.isabs(value) and _inside(value, root):
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


def _finished(run):
    """Whether a run's done file is there."""
    return os.path.isfile(os.path.join(run.folder, run.done))


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
    (:attr:`Run.needs`) has not finished or while another process holds
    its folder's lock (:mod:`emotion_invariant.runlock`).

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
    if code == 0 and not _finished(run):
        code = -1
    if code:
        return f"{run.name} failed (exit {code}); see {log}"
    run.wall_s = wall
    _write_stamp(run, wall_s=run.wall_s)
    return None


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
                _finished(r) and all(_finished(n) for n in r.needs)
                for r in mine
            ):
                systems.append(f"{system}=" + ",".join(r.folder for r in mine))
            else:
                missing.append(system)
        if systems:
            table = os.path.join(output_folder, f"{task}.md")
            argv = [python, spec["compare"], "--out", table] + systems
            out.append((task, argv, missing))
    return out
