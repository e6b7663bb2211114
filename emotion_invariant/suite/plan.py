"""Expand a suite plan into runs, run them resumably, and compare them."""

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field

import yaml
from tqdm import tqdm

from emotion_invariant.utils import atomic_open

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
    """

    task: str
    system: str
    folder: str
    commands: list
    done: str
    fold: str = None
    seed: str = None
    wall_s: float = field(default=None, compare=False)

    @property
    def name(self):
        """``task/system`` with its fold and seed."""
        parts = [self.task, self.system]
        if self.fold is not None:
            parts.append(f"fold {self.fold}")
        if self.seed is not None:
            parts.append(f"seed {self.seed}")
        return " ".join(parts)


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

    Arguments
    ---------
    path : str
        A yaml file: ``n_folds``, ``folds``, ``seeds``, ``pretrained_path``
        and ``tasks`` (task -> ``compare``, ``done``, ``systems``).
    overrides : dict, optional
        Top-level values replacing the file's (``folds``, ``seeds``...).

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
    """
    try:
        with open(path, encoding="utf-8") as f:
            plan = yaml.safe_load(f) or {}
    except OSError as error:
        raise SuiteError(f"{path}: cannot read the plan: {error}") from None
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid yaml: {error}") from None
    _check_keys(path, plan, TOP_KEYS)
    plan = {"n_folds": None, "pretrained_path": None, "tasks": {}, **plan}
    plan.update({k: v for k, v in (overrides or {}).items() if v is not None})
    for key in ("folds", "seeds"):
        values = plan.get(key)
        if not isinstance(values, list) or not values:
            raise SuiteError(f"{path}: {key} must be a non-empty list")
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
    return plan


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
    return runs


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
        if done or (os.path.isdir(run.folder) and os.listdir(run.folder)):
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
    """Commands without the interpreter, which may move between machines."""
    return [list(argv[1:]) for argv in commands]


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
    import emotion_invariant

    environ = dict(os.environ if environ is None else environ)
    root = os.path.dirname(
        os.path.dirname(os.path.abspath(emotion_invariant.__file__))
    )
    paths = [root] + [p for p in [environ.get("PYTHONPATH")] if p]
    environ["PYTHONPATH"] = os.pathsep.join(paths)
    return environ


def execute(runs, stop_on_error=False, env=None):
    """Run what is not finished, one run after the other.

    Each run's output goes to ``FOLDER/suite.log``; its commands and wall
    time to ``FOLDER/suite_run.json``. A failed run is reported and the
    suite goes on to the next (``stop_on_error``: stops).

    Arguments
    ---------
    runs : list of Run
    stop_on_error : bool
    env : dict, optional
        The subprocesses' environment (default: :func:`package_env`).

    Returns
    -------
    list of Run
        The runs that failed.
    """
    states = [run_state(run) for run in runs]
    todo = [run for run, state in zip(runs, states) if state != "done"]
    logger.info(
        "%d runs: %d finished, %d to run",
        len(runs),
        len(runs) - len(todo),
        len(todo),
    )
    env = package_env() if env is None else env
    failed = []
    bar = tqdm(todo, desc="suite", unit="run", dynamic_ncols=True)
    for run in bar:
        bar.set_postfix_str(run.name)
        _write_stamp(run)
        start = time.monotonic()
        log = os.path.join(run.folder, "suite.log")
        code = 0
        with open(log, "a", encoding="utf-8") as out:
            for argv in run.commands:
                out.write("$ " + " ".join(argv) + "\n")
                out.flush()
                code = subprocess.call(
                    argv, stdout=out, stderr=subprocess.STDOUT, env=env
                )
                if code:
                    break
        wall = time.monotonic() - start
        if code == 0 and not os.path.isfile(os.path.join(run.folder, run.done)):
            code = -1
        if code:
            failed.append(run)
            tqdm.write(
                f"error: {run.name} failed (exit {code}); see {log}",
                file=sys.stderr,
            )
            if stop_on_error:
                break
            continue
        run.wall_s = wall
        _write_stamp(run, wall_s=run.wall_s)
    return failed


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
        because some of their runs are not finished.

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
            if all(
                os.path.isfile(os.path.join(r.folder, r.done)) for r in mine
            ):
                systems.append(f"{system}=" + ",".join(r.folder for r in mine))
            else:
                missing.append(system)
        if systems:
            table = os.path.join(output_folder, f"{task}.md")
            argv = [python, spec["compare"], "--out", table] + systems
            out.append((task, argv, missing))
    return out
