"""Small helpers shared by every stage: atomic file output, seeds, and
the C allocator's settings for CPU training."""

import contextlib
import ctypes
import hashlib
import os
import platform
import random
import secrets
import shutil
import tempfile

import numpy as np


def _new_file(folder, prefix, suffix, target):
    """Create an empty file of a fresh name in ``folder``; return its path.

    Unlike :func:`tempfile.mkstemp` (always 0600), the file is created with
    mode 0666 less the umask, as ``open`` would create it, so a result
    moved into place can be read by whoever the umask lets read it; and
    unlike reading the umask with ``os.umask``, this is thread-safe.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, prefix + secrets.token_hex(4) + suffix)
        try:
            os.close(os.open(tmp, flags, 0o666))
        except FileExistsError:
            continue
        except OSError as err:
            # Name what the user asked to write, not the temporary file.
            raise type(err)(err.errno, err.strerror, target) from None
        return tmp
    raise FileExistsError(f"{folder}: no free temporary file name")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path that replaces ``path`` only on success.

    Every writer in the project goes through this, so a crash or a bad
    input never leaves a half-written manifest, trial list or score file.

    Arguments
    ---------
    path : str or os.PathLike
        The final destination.

    Yields
    ------
    str
        A temporary file in the same folder; write to it, then leave the
        ``with`` block to move it into place.

    Example
    -------
    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "x.txt")
    >>> with atomic_path(out) as tmp:
    ...     with open(tmp, "w") as f:
    ...         _ = f.write("done")
    >>> open(out).read()
    'done'
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = _new_file(folder, "." + os.path.basename(path) + ".", ".tmp", path)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Open a file for writing that appears at ``path`` only when closed.

    Arguments
    ---------
    path : str or os.PathLike
        The final destination.
    mode : str
        ``"w"`` or ``"wb"``.
    **kwargs
        Passed to :func:`open` (e.g. ``newline=""`` for CSV).

    Yields
    ------
    file object

    Example
    -------
    >>> import os, tempfile
    >>> out = os.path.join(tempfile.mkdtemp(), "y.txt")
    >>> with atomic_open(out) as f:
    ...     _ = f.write("ok")
    >>> open(out).read()
    'ok'
    """
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f


@contextlib.contextmanager
def staged_files(folder, marker, owned=()):
    """Write a set of files that appears in ``folder`` whole or not at all.

    The files are written into a temporary folder inside ``folder`` (so on
    the same file system). On success the marker is removed from
    ``folder``, every other file is moved into place, the files of
    ``owned`` not written this time are removed, and the marker is moved in
    last: its presence says the set is complete, and a crash in between
    leaves no marker. On any error the temporary folder is removed and
    ``folder`` is left as it was (or removed, when this call created it).

    Arguments
    ---------
    folder : str
        Where the files go (created if missing).
    marker : str
        Name of the file, among those written, that marks the set complete.
    owned : iterable of str
        Names of every file the set may hold: those not written this time
        (left from an earlier set) are removed.

    Yields
    ------
    str
        The temporary folder: write each file there under its final name.

    Example
    -------
    >>> import os, tempfile
    >>> out = tempfile.mkdtemp()
    >>> with staged_files(out, "done.json") as tmp:
    ...     for name in ("a.txt", "done.json"):
    ...         open(os.path.join(tmp, name), "w").close()
    >>> with staged_files(out, "done.json") as tmp:
    ...     open(os.path.join(tmp, "a.txt"), "w").write("half")
    ...     raise OSError("disk full")
    Traceback (most recent call last):
    ...
    OSError: disk full
    >>> sorted(os.listdir(out)), open(os.path.join(out, "a.txt")).read()
    (['a.txt', 'done.json'], '')
    """
    created = not os.path.isdir(folder)
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(dir=folder, prefix=f".{marker}.")
    try:
        yield staging
        names = set(os.listdir(staging))
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(folder, marker))
        for name in sorted(names - {marker}):
            os.replace(os.path.join(staging, name), os.path.join(folder, name))
        for name in sorted(set(owned) - names - {marker}):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))
        if marker in names:
            os.replace(
                os.path.join(staging, marker), os.path.join(folder, marker)
            )
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                os.rmdir(folder)
        raise
    shutil.rmtree(staging, ignore_errors=True)


def os_error_message(err):
    """An ``OSError`` in one line: the path it concerns, then the reason.

    Example
    -------
    >>> os_error_message(PermissionError(13, "Permission denied", "/o/t.txt"))
    '/o/t.txt: Permission denied'
    >>> os_error_message(OSError("disk gone"))
    'disk gone'
    """
    if err.filename is None or err.strerror is None:
        return str(err)
    return f"{err.filename}: {err.strerror}"


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


def shorten(items, limit=10):
    """The first ``limit`` items joined by commas, and how many are left out.

    For error messages that name offending items without printing
    thousands of them.

    Arguments
    ---------
    items : iterable of str
    limit : int

    Returns
    -------
    str

    Example
    -------
    >>> shorten(["a", "b", "c"], limit=2)
    'a, b (+1 more)'
    >>> shorten(["a"])
    'a'
    """
    items = list(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def keep_freed_memory(limit=256 << 20):
    """Let glibc's malloc reuse freed memory instead of handing it back.

    PyTorch's CPU allocator keeps no cache: each activation of the
    published ECAPA-TDNN (channels 1024, tens of MB a batch) comes from
    ``malloc``, which serves blocks over its mmap threshold (at most 32 MB)
    with a fresh ``mmap`` and gives them back with ``munmap`` when freed,
    so every training step faults all its memory in again, page by page.
    Raising the mmap and trim thresholds to ``limit`` keeps such blocks in
    the heap for the next step: no arithmetic changes, only where memory
    comes from. ``benchmarks/cpu_memory.py``, the published model with 4
    stages frozen on 2 threads: 23% less time a step, a quarter of the
    page faults, 2.6 GB more peak memory (freed blocks stay with the
    process); limits of 48 and 64 MB gain nothing. A no-op off glibc
    (macOS, musl) and when ``EMOTION_INVARIANT_MALLOC=default`` is set;
    any other value of it (but empty) is an error, since a typo would keep
    the thresholds the user meant to turn off.

    Arguments
    ---------
    limit : int
        Bytes: allocations below it come from the heap, and up to this
        much free memory at the heap's top is kept.

    Returns
    -------
    bool
        Whether the thresholds were set.

    Raises
    ------
    ValueError
        ``EMOTION_INVARIANT_MALLOC`` is set to another value than
        ``default``, naming the value and what is accepted.

    Example
    -------
    >>> keep_freed_memory() in (True, False)
    True
    """
    setting = os.environ.get("EMOTION_INVARIANT_MALLOC", "")
    if setting == "default":
        return False
    if setting:
        raise ValueError(
            f"EMOTION_INVARIANT_MALLOC={setting!r} is not valid; expected "
            "'default' (glibc's own settings) or unset (keep freed memory)"
        )
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(
        mallopt(_M_MMAP_THRESHOLD, limit) and mallopt(_M_TRIM_THRESHOLD, limit)
    )
