"""Checkpoints that survive a full disk, a kill mid-save and a corrupt file.

SpeechBrain's ``Checkpointer`` writes a checkpoint in place, its
``CKPT.yaml`` first: a full disk or a kill mid-save leaves a ``CKPT+...``
folder that looks complete, and every later recovery fails on it.
:class:`AtomicCheckpointer` writes each checkpoint into a hidden staging
folder and renames it into place once every file is on disk; recovery skips,
with a warning naming the file, a checkpoint that does not load and falls
back to the next one in the order asked for.
"""

import contextlib
import errno
import logging
import os
import secrets
import shutil
import zipfile

from speechbrain.utils.checkpoints import (
    CKPT_PREFIX,
    DEFAULT_LOAD_HOOKS,
    METAFNAME,
    PARAMFILE_EXT,
    Checkpoint,
    Checkpointer,
    get_default_hook,
    torch_recovery,
)
from speechbrain.utils.distributed import ddp_barrier, if_main_process

logger = logging.getLogger(__name__)

#: Staging folders are hidden and do not start with ``CKPT``, so that no
#: ``Checkpointer`` (SpeechBrain's included) ever lists one.
STAGING_PATTERN = f".{CKPT_PREFIX}+*.tmp"
#: Less free space than this after a failed save means the disk filled up:
#: ``torch.save`` reports a full disk as a bare ``RuntimeError``.
FULL_DISK_BYTES = 1 << 20
#: The first bytes of every file ``torch.save`` writes (a zip archive).
ZIP_MAGIC = b"PK\x03\x04"


class CheckpointError(ValueError):
    """No checkpoint in the folder can be loaded; the message names each
    and why."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; ``errno`` is the cause's (e.g.
    ``ENOSPC``), the message names the checkpoints folder and the reason."""

    def __str__(self):
        return self.strerror


class _UnloadableFile(Exception):
    """A checkpoint file that failed to load: ``path: reason``."""


def _reason(err):
    """The reason an error gives, in a line, without torch's advice to load
    with ``weights_only=False`` (which runs whatever code the file holds)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip()
    if "weights_only" in text:
        return "not a file saved by torch.save (corrupt, or another format)"
    line = text.splitlines()[0] if text else ""
    return f"{type(err).__name__}: {line}" if line else type(err).__name__


def _file_problem(path, torch_format):
    """Why the file at ``path`` cannot be a good checkpoint file, or None.

    Looked for without loading it: an empty file (no SpeechBrain saver
    writes one); a zip archive (every ``torch.save`` file) that is
    truncated or fails its checksums, which ``torch.load`` alone does not
    check; and, where ``torch_format``, a file that is no zip archive.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(len(ZIP_MAGIC))
        if not head:
            return "empty file"
        if head == ZIP_MAGIC:
            try:
                with zipfile.ZipFile(path) as archive:
                    bad = archive.testzip()
            except OSError:
                raise
            except Exception:  # BadZipFile, EOFError, struct errors
                return "truncated or corrupt (not a complete zip archive)"
            if bad is not None:
                return f"corrupt (checksum mismatch in {bad})"
        elif torch_format:
            return (
                "not a file saved by torch.save (corrupt, truncated, "
                "or another format)"
            )
    except OSError as err:
        return _reason(err)
    return None


def _naming_failures(hook):
    """``hook`` (a load hook), raising :class:`_UnloadableFile` naming the
    file on failure: torch's errors name none."""

    def load(obj, path, end_of_epoch):
        try:
            hook(obj, path, end_of_epoch)
        except Exception as err:
            raise _UnloadableFile(f"{path}: {_reason(err)}") from err

    return load


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicCheckpointer(Checkpointer):
    """SpeechBrain's ``Checkpointer``, with atomic saves and a recovery that
    skips checkpoints that do not load.

    Saving: every file, ``CKPT.yaml`` included, is written into a hidden
    staging folder inside ``checkpoints_dir``, flushed to disk, and the
    folder is then renamed to its ``CKPT+...`` name, so a checkpoint is
    there whole or not at all. A save that fails (a full disk, a read-only
    folder) removes its staging folder, leaves the earlier checkpoints as
    they were and raises :class:`CheckpointWriteError` (``cannot write
    checkpoint in <folder>: No space left on device``). Staging folders of
    a process killed mid-save are never listed and are removed by the next
    save (a run folder holds one training process at a time).

    Recovering: ``recover_if_possible`` and ``find_checkpoint`` take the
    checkpoints in the order asked for (newest, ``min_key``, ``max_key`` or
    ``importance_key``) and skip, with a warning naming the file and why,
    each that does not load: an unreadable ``CKPT.yaml``, a missing,
    empty, truncated or corrupt file. ``find_checkpoint`` checks the files
    without loading them (zip checksums); ``recover_if_possible`` also
    moves on when a load itself fails. When checkpoints are there but none
    loads, both raise :class:`CheckpointError` naming each.

    Arguments are those of SpeechBrain's ``Checkpointer``.

    Example
    -------
    >>> import tempfile, torch
    >>> folder = tempfile.mkdtemp()
    >>> model = torch.nn.Linear(2, 2)
    >>> saver = AtomicCheckpointer(folder, {"model": model})
    >>> older = saver.save_checkpoint(meta={"EER": 0.2})
    >>> newer = saver.save_checkpoint(meta={"EER": 0.1})
    >>> _ = (newer.path / "model.ckpt").write_bytes(b"PK\\x03\\x04 cut")
    >>> saver.recover_if_possible(min_key="EER").path == older.path
    True
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._staging = None
        self._warned = set()
        self._unreadable = {}

    def save_checkpoint(
        self, meta=None, end_of_epoch=True, name=None, verbosity=logging.INFO
    ):
        """Save a checkpoint into a staging folder, then rename it into
        place; see ``Checkpointer.save_checkpoint`` for the arguments.

        Raises
        ------
        CheckpointWriteError
            When a file cannot be written; nothing of this checkpoint is
            left on disk.
        """
        final = None
        try:
            if if_main_process():
                self._remove_staging_leftovers()
                if name is None:
                    final = super()._new_checkpoint_dirpath()
                else:
                    final = super()._custom_checkpoint_dirpath(name)
                self._staging = self._new_staging_dir(final.name)
            # SpeechBrain names the staging folder in its own log, at the
            # debug level; the final folder is logged below.
            saved = super().save_checkpoint(
                meta={} if meta is None else meta,
                end_of_epoch=end_of_epoch,
                name=name,
                verbosity=logging.DEBUG,
            )
            ddp_barrier()  # every process has written its files
            if saved is not None:
                saved = self._publish(saved, final)
            # Every process then lists the checkpoint in place: SpeechBrain's
            # pruning, which follows, deletes in step on every process.
            ddp_barrier()
        except Exception as err:
            failure = self._write_error(err)  # while the disk is still full
            self._discard_staging()
            if failure is None:
                raise
            raise failure from err
        except BaseException:
            self._discard_staging()
            raise
        finally:
            self._staging = None
        if saved is not None:
            kind = "end-of-epoch" if end_of_epoch else "intra-epoch"
            logger.log(
                verbosity, "Saved an %s checkpoint in %s", kind, saved.path
            )
        return saved

    def _new_checkpoint_dirpath(self):
        # SpeechBrain's save_checkpoint writes into the folder named here.
        return self._staging or super()._new_checkpoint_dirpath()

    def _custom_checkpoint_dirpath(self, name):
        return self._staging or super()._custom_checkpoint_dirpath(name)

    def _new_staging_dir(self, name):
        # os.mkdir, unlike tempfile.mkdtemp (0700), follows the umask, as
        # the checkpoint folder SpeechBrain creates would.
        while True:
            path = self.checkpoints_dir / f".{name}.{secrets.token_hex(4)}.tmp"
            with contextlib.suppress(FileExistsError):
                os.mkdir(path)
                return path

    def _discard_staging(self):
        if self._staging is not None:
            shutil.rmtree(self._staging, ignore_errors=True)

    def _remove_staging_leftovers(self):
        for path in self.checkpoints_dir.glob(STAGING_PATTERN):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
                logger.info("removed %s, left by a save that did not end", path)

    def _publish(self, saved, final):
        """Flush the staging folder to disk and rename it to ``final``."""
        for path in saved.path.iterdir():
            _fsync(path)
        _fsync(saved.path)
        if final.exists():  # a named checkpoint saved again
            old = self._new_staging_dir(final.name)
            os.replace(final, old)
            os.rename(saved.path, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(saved.path, final)
        _fsync(self.checkpoints_dir)
        paramfiles = {
            name: final / path.name for name, path in saved.paramfiles.items()
        }
        return Checkpoint(final, saved.meta, paramfiles)

    def _write_error(self, err):
        """The :class:`CheckpointWriteError` that ``err``, raised by a save,
        stands for; None when it is no write error."""
        if isinstance(err, OSError):
            code, reason = err.errno, err.strerror or str(err)
        else:
            try:
                free = shutil.disk_usage(self.checkpoints_dir).free
            except OSError:
                return None
            if free >= FULL_DISK_BYTES:
                return None
            code, reason = errno.ENOSPC, os.strerror(errno.ENOSPC)
        return CheckpointWriteError(
            code, f"cannot write checkpoint in {self.checkpoints_dir}: {reason}"
        )

    def list_checkpoints(self):
        """Every checkpoint whose ``CKPT.yaml`` can be read; the others are
        skipped with a warning.

        Returns
        -------
        list
            ``Checkpoint`` namedtuples.
        """
        checkpoints = []
        self._unreadable = {}
        for path in self._list_checkpoint_dirs():
            try:
                (ckpt,) = self._construct_checkpoint_objects([path])
                meta = ckpt.meta if isinstance(ckpt.meta, dict) else {}
                good = "end-of-epoch" in meta and isinstance(
                    meta.get("unixtime"), (int, float)
                )
                problem = None if good else "not a checkpoint's metadata"
            except Exception as err:  # yaml, decoding and OS errors
                problem = _reason(err)
            if problem is None:
                checkpoints.append(ckpt)
                continue
            problem = f"{path / METAFNAME}: unreadable ({problem})"
            self._unreadable[path] = problem
            self._skip(path, problem)
        return checkpoints

    def find_checkpoint(
        self,
        importance_key=None,
        max_key=None,
        min_key=None,
        ckpt_predicate=None,
    ):
        """The first checkpoint, in the order asked for, whose files are all
        there and sound; see ``Checkpointer.find_checkpoint``.

        Raises
        ------
        CheckpointError
            When checkpoints are there but none is sound.
        """
        return self._first_sound(
            importance_key=importance_key,
            max_key=max_key,
            min_key=min_key,
            ckpt_predicate=ckpt_predicate,
        )

    def recover_if_possible(
        self,
        importance_key=None,
        max_key=None,
        min_key=None,
        ckpt_predicate=None,
    ):
        """Load the first checkpoint, in the order asked for, that loads;
        see ``Checkpointer.recover_if_possible``.

        Returns
        -------
        Checkpoint or None
            The checkpoint loaded; None when there is none to load.

        Raises
        ------
        CheckpointError
            When checkpoints are there but none loads.
        """
        ckpt = self._first_sound(
            self.load_checkpoint,
            importance_key=importance_key,
            max_key=max_key,
            min_key=min_key,
            ckpt_predicate=ckpt_predicate,
        )
        if ckpt is None:
            logger.info("Would load a checkpoint here, but none found yet.")
        return ckpt

    def _first_sound(self, load=None, **order):
        """The first checkpoint, in the ``order`` of
        ``Checkpointer.find_checkpoints``, whose files are all there and
        sound and, given ``load``, that ``load`` loads; each one before it
        skipped with a warning. None when there is none.

        Raises
        ------
        CheckpointError
            When checkpoints are there but none will do.
        """
        problems = []
        for ckpt in self.find_checkpoints(**order):
            problem = self._problem(ckpt)
            if problem is None:
                try:
                    if load is not None:
                        load(ckpt)
                    return ckpt
                except _UnloadableFile as err:
                    problem = str(err)
            self._skip(ckpt.path, problem)
            problems.append(problem)
        self._give_up(problems)
        return None

    def _call_load_hooks(self, checkpoint):
        # Every hook is wrapped to name its file on failure; SpeechBrain's
        # loop still decides which files are needed and how to load each.
        own = self.custom_load_hooks
        hooks = {name: self._load_hook(name) for name in self.recoverables}
        self.custom_load_hooks = {
            name: _naming_failures(hook)
            for name, hook in hooks.items()
            if hook is not None
        }
        try:
            super()._call_load_hooks(checkpoint)
        finally:
            self.custom_load_hooks = own

    def _load_hook(self, name):
        if name in self.custom_load_hooks:
            return self.custom_load_hooks[name]
        return get_default_hook(self.recoverables[name], DEFAULT_LOAD_HOOKS)

    def _problem(self, ckpt):
        """Why ``ckpt`` cannot load, found without loading it, or None."""
        for name in self.recoverables:
            path = ckpt.paramfiles.get(name)
            if path is None:
                if (
                    self.allow_partial_load
                    or "dataloader" in name
                    or self.optional_recoverables.get(name)
                ):
                    continue
                return f"{ckpt.path / (name + PARAMFILE_EXT)}: missing"
            torch_format = self._load_hook(name) is torch_recovery
            problem = _file_problem(path, torch_format)
            if problem is not None:
                return f"{path}: {problem}"
        return None

    def _skip(self, path, problem):
        if (path, problem) not in self._warned:
            self._warned.add((path, problem))
            logger.warning(
                "skipping a checkpoint that does not load: %s; trying the "
                "next one",
                problem,
            )

    def _give_up(self, problems):
        problems = problems + list(self._unreadable.values())
        if problems:
            raise CheckpointError(
                f"no checkpoint in {self.checkpoints_dir} can be loaded: "
                + "; ".join(problems)
            )
