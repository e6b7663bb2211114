"""Expand a checked plan into runs: one per system, fold and seed, each
knowing the earlier runs whose folders it reads."""

import json
import os
import sys
from dataclasses import dataclass, field

from emotion_invariant.suite.plan import SuiteError


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
        Why it failed or was not run, after
        :func:`~emotion_invariant.suite.execute.execute`.
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

    @property
    def finished(self):
        """Whether its done file is there."""
        return os.path.isfile(os.path.join(self.folder, self.done))


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
    (:attr:`Run.needs`): :func:`~emotion_invariant.suite.execute.execute`
    starts it only once that run finished, which therefore has to come
    first in the plan.

    Arguments
    ---------
    plan : dict
        From :func:`~emotion_invariant.suite.plan.load_plan`.
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


def inside(path, folder):
    """Whether ``path`` is ``folder`` or lies inside it (no file read).

    Example
    -------
    >>> inside("out/sv/ft/f1_s1/save", "out/sv/ft/f1_s1"), inside("a/bc", "a/b")
    (True, False)
    """
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
            if value and not inside(value, run.folder):
                yield value


def _link(runs):
    """Fill each run's ``needs``: the runs whose folders it reads."""
    for index, run in enumerate(runs):
        for value in _paths(run):
            for other_index, other in enumerate(runs):
                if other is run or not inside(value, other.folder):
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
