"""The C allocator's settings for CPU training: glibc's malloc keeps freed
memory for the next step instead of handing it back."""

import ctypes
import os
import platform

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
