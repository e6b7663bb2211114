"""A run's processes live and die with the suite that started them.

A recipe left training after its suite was killed goes on writing into a
run folder that the next suite resumes, so two trainers share one folder.
Each run therefore starts in a process group of its own (its workers
included), which the suite stops as a whole when it is stopped itself
(SIGTERM, SIGINT, SIGHUP: :func:`stop_signals` and :func:`call`). A
``kill -9`` of the suite cannot be caught: on Linux the run's main process
is then sent SIGTERM by the kernel (``prctl(PR_SET_PDEATHSIG)``), and the
lock it holds on its folder is freed as it ends.
"""

import contextlib
import ctypes
import os
import signal
import subprocess
import sys

#: Seconds a stopped run gets to end on SIGTERM before it is killed.
GRACE_S = 30

# <linux/prctl.h>
PR_SET_PDEATHSIG = 1


class Stopped(BaseException):
    """The suite was asked to stop by a signal.

    A ``BaseException``, as ``KeyboardInterrupt`` is, so that no
    ``except Exception`` on the way swallows it.

    Arguments
    ---------
    signum : int
        The signal received.

    Example
    -------
    >>> Stopped(signal.SIGTERM).name
    'SIGTERM'
    """

    def __init__(self, signum):
        super().__init__(int(signum))
        self.signum = int(signum)
        self.run = None  # the run it stopped, if any

    @property
    def name(self):
        """The signal's name (``SIGTERM``...)."""
        return signal.Signals(self.signum).name


@contextlib.contextmanager
def stop_signals(signums=(signal.SIGTERM, signal.SIGINT, signal.SIGHUP)):
    """Turn these signals into :class:`Stopped` inside the ``with`` block.

    A signal ignored when the block starts (``nohup`` ignores SIGHUP)
    stays ignored. Only the main thread can set handlers.

    Example
    -------
    >>> with stop_signals():
    ...     os.kill(os.getpid(), signal.SIGTERM)
    Traceback (most recent call last):
    ...
    emotion_invariant.suite.process.Stopped: 15
    """

    def handler(signum, frame):
        raise Stopped(signum)

    before = {}
    try:
        for signum in signums:
            previous = signal.getsignal(signum)
            if previous != signal.SIG_IGN:
                before[signum] = previous
                signal.signal(signum, handler)
        yield
    finally:
        for signum, previous in before.items():
            signal.signal(signum, previous)


def _die_with_parent():
    """A ``preexec_fn`` asking the kernel to send the child SIGTERM when
    this process dies (Linux), else ``None``.

    ctypes is loaded here, in the parent, so that the child only makes two
    system calls between ``fork`` and ``exec``.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    prctl.restype = ctypes.c_int
    parent, signum = os.getpid(), int(signal.SIGTERM)

    def preexec():
        prctl(PR_SET_PDEATHSIG, signum, 0, 0, 0)
        # The parent died before the request was made: no signal will come.
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def stop(process, grace=GRACE_S):
    """Stop a process started by :func:`call`, and its whole group.

    SIGTERM to the group, SIGKILL after ``grace`` seconds or at a second
    signal, then SIGKILL to whatever of the group outlived its leader.

    Arguments
    ---------
    process : subprocess.Popen
        A process group leader.
    grace : float
        Seconds it gets to end on SIGTERM.

    Example
    -------
    >>> p = subprocess.Popen([sys.executable, "-c", "import time; "
    ...     "time.sleep(60)"], start_new_session=True)
    >>> stop(p)
    >>> p.returncode
    -15
    """
    for signum, timeout in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signum)
        try:
            process.wait(timeout)
            break
        except (subprocess.TimeoutExpired, Stopped, KeyboardInterrupt):
            continue
    while process.returncode is None:
        # A signal arrived during the wait after SIGKILL: wait again.
        with contextlib.suppress(Stopped, KeyboardInterrupt):
            process.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)


def call(argv, **kwargs):
    """Run ``argv`` to its end, as :func:`subprocess.call` does, in a
    process group of its own that does not outlive this process.

    When this process is stopped meanwhile (:class:`Stopped`,
    ``KeyboardInterrupt``, any exception), the group is stopped
    (:func:`stop`) before the exception goes on. When this process is
    killed, the kernel sends the child SIGTERM (Linux).

    Arguments
    ---------
    argv : list of str
    **kwargs
        More arguments of :class:`subprocess.Popen` (``stdout``, ``env``).

    Returns
    -------
    int
        The exit status (``-N``: ended by signal N).

    Example
    -------
    >>> call([sys.executable, "-c", "import os, sys; "
    ...       "sys.exit(os.getsid(0) != os.getpid())"])  # a session leader
    0
    """
    process = subprocess.Popen(
        argv,
        start_new_session=True,
        preexec_fn=_die_with_parent(),
        **kwargs,
    )
    try:
        return process.wait()
    except BaseException:
        stop(process)
        raise
