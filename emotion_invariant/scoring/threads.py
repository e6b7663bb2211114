"""One intra-op thread for memory-bound CPU work on a shared machine.

PyTorch splits each large enough operation over its intra-op threads and
waits for all of them at the end. For the sort/cumsum passes of the metrics
that wait costs more than the extra threads gain once other processes keep
the cores busy, so those run on one thread.
"""

import contextlib

import torch


@contextlib.contextmanager
def one_cpu_thread(device=None):
    """Run the block on one intra-op thread unless ``device`` is a GPU.

    Small element-wise passes are memory-bound: a second thread gains
    little, and waiting for it at every operation costs much more on a busy
    machine. The previous thread count is restored on exit.

    Example
    -------
    >>> before = torch.get_num_threads()
    >>> with one_cpu_thread(torch.device("cpu")):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if device is not None and torch.device(device).type != "cpu":
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
