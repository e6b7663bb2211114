"""Seeds and random generators: per-step seeds that a resumed run draws
again as an unbroken one would, and a :class:`random.Random` from any seed
or generator."""

import hashlib
import random

import numpy as np


def step_seed(*parts):
    """A 63-bit seed that depends only on ``parts``, the same in every process.

    Seeding torch's generator with ``step_seed(seed, epoch, step)`` at the
    start of each training step makes the step's random draws (augmentation,
    masking, dropout) a function of where training is, so a run resumed from
    a mid-epoch checkpoint draws what an unbroken run draws. Python's
    ``hash`` of a string changes between processes; this does not.

    Arguments
    ---------
    *parts : object
        Anything with a stable ``str``.

    Returns
    -------
    int

    Example
    -------
    >>> step_seed(1, 2, 3) == step_seed(1, 2, 3)
    True
    >>> step_seed(1, 2, 3) == step_seed(1, 3, 2)
    False
    """
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def as_rng(rng):
    """Turn a seed or a generator into a :class:`random.Random`.

    A NumPy generator gives one draw to seed the new generator, so the
    result stays deterministic given the generator's state.

    Arguments
    ---------
    rng : None, int, random.Random or numpy.random.Generator
        ``None`` gives a fresh, unseeded generator.

    Returns
    -------
    random.Random

    Example
    -------
    >>> import numpy as np
    >>> a = as_rng(np.random.default_rng(3)).random()
    >>> b = as_rng(np.random.default_rng(3)).random()
    >>> a == b
    True
    >>> as_rng(7).random() == random.Random(7).random()
    True
    """
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, np.random.Generator):
        return random.Random(int(rng.integers(2**63)))
    if rng is None or isinstance(rng, (int, np.integer)):
        return random.Random(None if rng is None else int(rng))
    raise TypeError(
        "expected None, an int seed, random.Random or numpy.random.Generator,"
        f" got {type(rng).__name__}"
    )
