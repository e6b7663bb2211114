"""The recipe scripts as modules, for tests that call their functions.

A recipe is a script, not a package (no recipe imports another,
``tests/test_architecture.py``), so a test loads it from its path. The
module is not put in ``sys.modules``: each call runs the script afresh, so
a test that replaces one of its names changes no other test's copy.
"""

import importlib.util
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def recipe_path(task, script="train"):
    """The path of ``recipes/<task>/<script>.py``.

    Example
    -------
    >>> os.path.isfile(recipe_path("emotion_recognition", "pretrain"))
    True
    """
    return os.path.join(ROOT, "recipes", task, f"{script}.py")


def load_recipe(task, script="train"):
    """``recipes/<task>/<script>.py``, loaded as a new module.

    Arguments
    ---------
    task : str
        The recipe's folder: ``speaker_verification`` or
        ``emotion_recognition``.
    script : str
        The script's name without ``.py`` (``train``, ``evaluate``,
        ``compare``, ``pretrain``).

    Returns
    -------
    module

    Example
    -------
    >>> compare = load_recipe("speaker_verification", "compare")
    >>> compare is load_recipe("speaker_verification", "compare")
    False
    >>> callable(compare.main)
    True
    """
    spec = importlib.util.spec_from_file_location(
        f"{task}_{script}", recipe_path(task, script)
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
