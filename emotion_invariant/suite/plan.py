"""Read and check a suite plan: its folds, seeds, tasks and systems, and
the project's files they name."""

import os
import re
import string

import yaml

TOP_KEYS = {"n_folds", "folds", "seeds", "pretrained_path", "tasks"}
TASK_KEYS = {"compare", "done", "per_fold", "seeded", "systems", "script"}
TASK_KEYS |= {"hparams_dir"}
SYSTEM_KEYS = {"script", "hparams", "overrides", "commands", "per_fold"}
SYSTEM_KEYS |= {"seeded", "done"}


class SuiteError(ValueError):
    """A plan, a run folder or a run that cannot be used as asked."""


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
