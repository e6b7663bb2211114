"""Old module paths kept for one release after a move.

A module that moved leaves behind a few lines that make its old path an
alias of the new one, with a ``DeprecationWarning`` naming both, as
SpeechBrain does for its own moved modules. Its command line keeps working
too: ``python -m OLD`` runs the new module's ``main``.

Example
-------
>>> import warnings
>>> namespace = {}
>>> with warnings.catch_warnings(record=True) as caught:
...     warnings.simplefilter("always")
...     _ = moved(namespace, "old.path", "emotion_invariant.scoring.score")
>>> "main" in namespace, caught[0].category.__name__
(True, 'DeprecationWarning')
"""

import importlib
import warnings


def moved(namespace, old, new, release="0.3.0"):
    """Fill ``namespace`` (an old module's globals) with module ``new``.

    Arguments
    ---------
    namespace : dict
        The old module's ``globals()``.
    old : str
        The old dotted path, for the warning.
    new : str
        The dotted path of the module that replaces it.
    release : str
        The release in which the old path goes.

    Returns
    -------
    module
        The new module.
    """
    warnings.warn(
        f"{old} moved to {new}; the old path goes in release {release}",
        DeprecationWarning,
        stacklevel=3,
    )
    module = importlib.import_module(new)
    namespace.update(
        {k: v for k, v in vars(module).items() if not k.startswith("__")}
    )
    return module
