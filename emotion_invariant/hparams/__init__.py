"""A recipe's hyperparameters: SpeechBrain's loading, and the checks of
every method and training key.

Each recipe file ``hparams/<task>/X.yaml`` is complete hyperpyyaml, loaded
as SpeechBrain's recipes load theirs::

    with open(hparams_file, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, overrides)

The files are rendered from one source per fact
(:mod:`emotion_invariant.hparams.render`, ``make hparams``). Every key in
:data:`RULES` is checked (type and range), in the command-line overrides
before anything is built, and in the loaded values.
"""

import datetime
import io
import os

import ruamel.yaml
from hyperpyyaml import load_hyperpyyaml, resolve_references

from emotion_invariant.atomic import atomic_open
from emotion_invariant.hparams.render import (
    compose_hparams,
    included_files,
    parse_overrides,
    resolve_hparams,
)
from emotion_invariant.hparams.rules import RULES, HparamsError, check_hparams

__all__ = [
    "RULES",
    "HparamsError",
    "check_hparams",
    "compose_hparams",
    "included_files",
    "load_hparams",
    "parse_overrides",
    "plain_hparams",
    "resolve_hparams",
    "save_hparams",
]


def _overrides_yaml(overrides):
    """The overrides as YAML text, as SpeechBrain passes them (empty text
    for none)."""
    if not overrides:
        return ""
    if isinstance(overrides, str):
        return overrides
    stream = io.StringIO()
    ruamel.yaml.YAML().dump(dict(overrides), stream)
    return stream.getvalue()


def _checked_overrides(path, overrides):
    """The overrides as YAML text, once each key of :data:`RULES` in them
    is checked."""
    check_hparams(parse_overrides(overrides), f"{path} with overrides")
    return _overrides_yaml(overrides)


def _open(path):
    if not os.path.isfile(path):
        raise HparamsError(f"hyperparameter file not found: {path}")
    return open(path, encoding="utf-8")


def plain_hparams(path, overrides=None):
    """The values a file stands for, without building any of its objects.

    Loading a file builds its objects, and some write as they are built
    (a checkpointer creates its folder); a recipe reads its output folder
    here first, to check and lock it before anything is written there.

    Arguments
    ---------
    path : str
        A recipe's hyperpyyaml file.
    overrides : str or dict, optional
        Command-line overrides (YAML text as SpeechBrain's
        ``parse_arguments`` returns them, or a dict).

    Returns
    -------
    dict
        Every key, references resolved; an object's entry is its
        arguments (a tagged mapping or list), not the object. Every key of
        :data:`RULES` is checked, in the overrides and in the values.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write(
    ...     "out: !ref runs/<seed>\\nseed: 1\\n"
    ...     "ckpt: !new:speechbrain.utils.checkpoints.Checkpointer\\n"
    ...     "    checkpoints_dir: !ref <out>/save\\n")
    >>> values = plain_hparams(path, {"seed": 7})
    >>> values["out"], values["ckpt"]["checkpoints_dir"]
    ('runs/7', 'runs/7/save')
    """
    overrides_yaml = _checked_overrides(path, overrides)
    with _open(path) as fin:
        try:
            # A misspelt override fails here, before the output folder
            # is made, as loading would fail.
            resolved = resolve_references(
                fin, overrides_yaml, overrides_must_match=True
            )
            values = ruamel.yaml.YAML().load(resolved)
        except Exception as err:
            raise HparamsError(f"{path}: {err}") from err
    if not isinstance(values, dict):
        raise HparamsError(f"{path}: expected `key: value` lines")
    check_hparams(values, path)
    return values


def load_hparams(path, overrides=None):
    """Load a recipe's hyperpyyaml file as SpeechBrain's recipes do, with
    every key of :data:`RULES` checked.

    Arguments
    ---------
    path : str
        A recipe's hyperpyyaml file.
    overrides : str or dict, optional
        Command-line overrides.

    Returns
    -------
    tuple
        ``(hparams, path, overrides_yaml)``: the loaded objects, and the
        file and overrides text to record in the experiment folder.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "h.yaml")
    >>> _ = open(path, "w").write("lr: 0.1\\nopt: !name:torch.optim.SGD\\n"
    ...     "    lr: !ref <lr>\\n")
    >>> load_hparams(path, "lr: 0.5")[0]["opt"].keywords
    {'lr': 0.5}
    >>> load_hparams(path, {"lr": -1})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.hparams.rules.HparamsError: ...h.yaml with overrides: \
lr: -1 is not valid; expected a number in (0, inf)
    """
    overrides_yaml = _checked_overrides(path, overrides)
    with _open(path) as fin:
        try:
            hparams = load_hyperpyyaml(fin, overrides_yaml)
        except OSError as err:
            if err.filename is not None:
                # A folder that an object creates (a checkpointer's save
                # folder) is at fault, not the file: the error names it.
                raise
            raise HparamsError(f"{path}: {err}") from err
        except Exception as err:
            raise HparamsError(f"{path}: {err}") from err
    check_hparams(hparams, path)
    return hparams, path, overrides_yaml


def save_hparams(path, overrides, folder):
    """Write ``folder/hyperparams.yaml``: the file with the overrides
    applied and every reference resolved, as SpeechBrain's
    ``create_experiment_directory`` writes it, through a temporary file so
    that no half-written copy is left.

    Arguments
    ---------
    path : str
        The recipe's hyperpyyaml file.
    overrides : str or dict
        The command-line overrides.
    folder : str
        The experiment folder.

    Example
    -------
    >>> import os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> path = os.path.join(d, "h.yaml")
    >>> _ = open(path, "w").write("n: 2\\nb: !ref <n>\\n")
    >>> save_hparams(path, "n: 3", d)
    >>> print(open(os.path.join(d, "hyperparams.yaml")).read()[-10:], end="")
    n: 3
    b: 3
    """
    with open(path, encoding="utf-8") as fin:
        resolved = resolve_references(fin, _overrides_yaml(overrides))
    with atomic_open(os.path.join(folder, "hyperparams.yaml")) as f:
        f.write(f"# Generated {datetime.date.today()} from:\n")
        f.write(f"# {os.path.abspath(path)}\n# yamllint disable\n")
        f.write(resolved.getvalue())
