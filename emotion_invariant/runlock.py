"""One process per run folder.

Two runs writing into one output folder mix their logs, prune each other's
checkpoints and evaluate each other's models, all with exit code 0. A run
therefore holds an exclusive lock on its folder, an ``fcntl.flock`` on
``<folder>/.run.lock``, for as long as it writes there. The operating
system drops the lock when its process dies, however it dies, so a lock is
never left held by a dead process; the file also records who holds it (pid,
command line, purpose, start time), which names the holder in the error of
a second process and, when a killed process left it behind, in the warning
of the process that takes it over.
"""

import atexit
import contextlib
import errno
import fcntl
import json
import logging
import os
import shlex
import sys
import threading
import time

logger = logging.getLogger(__name__)

#: The lock file's name inside a run folder.
LOCK_NAME = ".run.lock"

# The locks this process holds, by the folder's real path: locking a folder
# twice returns the lock already held (a recipe's start-up and its library
# may both lock the folder they write).
_held = {}
_guard = threading.RLock()
# How often a lock held by no recorded live process is tried again.
_TRIES = 20


class RunFolderLocked(RuntimeError):
    """Another live process holds the folder's lock.

    The message names the folder, the holder's pid, its command line and
    since when it holds the lock.
    """


def _command():
    """This process's command line, as a shell would show it."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return shlex.join(argv)


def _read_record(path):
    """The holder's record in the lock file at ``path``, or ``None``."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _alive(record):
    """Whether the pid of a lock file's record names a running process."""
    pid = record.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _describe(record):
    """``pid N (command)`` for a lock file's record."""
    pid = record.get("pid", "?")
    # One line, whatever the command holds (``python -c`` code spans many).
    command = str(record.get("command") or "command unknown")
    command = command.replace("\r", "\\r").replace("\n", "\\n")
    return f"pid {pid} ({command})"


class RunLock:
    """An exclusive lock on a run folder, held by this process.

    Made by :func:`acquire_run_lock`; held until :meth:`release` (once per
    acquisition) or the end of the process. Also a context manager.

    Arguments
    ---------
    folder : str
        The run folder.
    fd : int
        The open, flock-ed lock file.
    path : str
        The lock file's path.
    created : bool
        Whether locking created the folder (then removed on release if
        nothing was written in it).

    Example
    -------
    >>> import os, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with acquire_run_lock(folder, purpose="demo") as lock:
    ...     lock_holder(folder)["purpose"]
    'demo'
    >>> lock_holder(folder) is None
    True
    """

    def __init__(self, folder, fd, path, created=False):
        self.folder = folder
        self._fd = fd
        self._path = path
        self._count = 1
        self._created = created

    def release(self):
        """Release one acquisition; the last one frees the folder."""
        with _guard:
            if self._fd is None:
                return
            self._count -= 1
            if self._count > 0:
                return
            _held.pop(os.path.realpath(self.folder), None)
            # Removed while still locked, so that a process which opened
            # this file meanwhile sees, once it gets the lock, that the
            # file is no longer the folder's lock file (and tries again).
            with contextlib.suppress(OSError):
                os.remove(self._path)
            os.close(self._fd)
            self._fd = None
            if self._created:
                # A run that stopped before writing leaves no empty folder
                # (rmdir fails on a folder holding anything).
                with contextlib.suppress(OSError):
                    os.rmdir(self.folder)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def __repr__(self):
        state = "held" if self._fd is not None else "released"
        return f"RunLock({self.folder!r}, {state})"


def _release_all():
    """Free every folder still locked when the interpreter exits."""
    with _guard:
        for lock in list(_held.values()):
            lock._count = 1
            lock.release()


atexit.register(_release_all)


def _open_locked(path):
    """Open and flock ``path``; the fd, or ``None`` when it is taken."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
                return None
            raise
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            return fd
        # The holder released (and removed) the file between our open and
        # our flock: lock the folder's current file instead.
        os.close(fd)


def acquire_run_lock(folder, purpose=None):
    """Lock ``folder`` for this process, creating it if needed.

    Arguments
    ---------
    folder : str or os.PathLike
        The run folder.
    purpose : str, optional
        What the run does there (``train``, ``evaluate``, ``export``...),
        recorded for :func:`lock_holder`.

    Returns
    -------
    RunLock
        Held until its ``release()`` or the end of the process. Locking a
        folder this process holds returns the same lock (released when
        each acquisition has been). A folder it created is removed on
        release if nothing was written in it.

    Raises
    ------
    RunFolderLocked
        When another live process holds the folder.
    OSError
        When the folder or its lock file cannot be created.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> lock = acquire_run_lock(folder, purpose="train")
    >>> acquire_run_lock(folder) is lock
    True
    >>> lock.release(); lock.release()
    """
    folder = os.fspath(folder)
    with _guard:
        lock = _held.get(os.path.realpath(folder))
        if lock is not None:
            lock._count += 1
            return lock
        created = not os.path.isdir(folder)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, LOCK_NAME)
        for _ in range(_TRIES):
            fd = _open_locked(path)
            if fd is not None:
                break
            record = _read_record(path) or {}
            if _alive(record):
                break
            # Held, but not by the recorded process: its holder is still
            # writing its record, or is a lock_holder() probe. Both are
            # over in an instant.
            time.sleep(0.05)
        if fd is None:
            since = record.get("since", "an unknown time")
            raise RunFolderLocked(
                f"{folder} is in use by {_describe(record)} since {since}; "
                "wait for it to end or stop it"
            )
        stale = _read_record(path)
        if stale is not None:
            logger.warning(
                "%s: taking over the lock left by %s, which is no longer "
                "running",
                folder,
                _describe(stale),
            )
        record = {
            "pid": os.getpid(),
            "command": _command(),
            "purpose": purpose,
            "since": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        data = json.dumps(record).encode("utf-8")
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        lock = RunLock(folder, fd, path, created)
        _held[os.path.realpath(folder)] = lock
        return lock


@contextlib.contextmanager
def run_lock(folder, purpose=None):
    """Hold ``folder``'s lock for the ``with`` block.

    Example
    -------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with run_lock(folder, "evaluate"):
    ...     lock_holder(folder)["pid"] == os.getpid()
    True
    """
    lock = acquire_run_lock(folder, purpose)
    try:
        yield lock
    finally:
        lock.release()


def lock_holder(folder):
    """Who holds ``folder``'s lock, without taking it.

    Arguments
    ---------
    folder : str or os.PathLike
        The run folder.

    Returns
    -------
    dict or None
        ``{"pid", "command", "purpose", "since"}`` of the live process
        holding the lock (this one included), else ``None``.

    Example
    -------
    >>> import tempfile
    >>> lock_holder(tempfile.mkdtemp()) is None
    True
    """
    folder = os.fspath(folder)
    with _guard:
        lock = _held.get(os.path.realpath(folder))
        if lock is not None:
            return _read_record(lock._path)
    path = os.path.join(folder, LOCK_NAME)
    record = _read_record(path)
    # A record naming a dead process is stale; only a live one is worth
    # checking against the lock itself (its pid may have been reused).
    if record is None or not _alive(record):
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno not in (errno.EWOULDBLOCK, errno.EACCES):
            raise
        return {
            key: record.get(key)
            for key in ("pid", "command", "purpose", "since")
        }
    finally:
        os.close(fd)
    return None
