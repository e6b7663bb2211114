"""Files that appear whole or not at all: a single file written to a
temporary name and renamed into place (:func:`atomic_path`,
:func:`atomic_open`), and a set of files moved in behind a marker
(:func:`staged_files`): a crash or a bad input never leaves a
half-written manifest, trial list, score file or report.
"""

import contextlib
import os
import secrets
import shutil
import tempfile


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
