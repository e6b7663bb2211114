"""Multi-process (DDP) training that also runs on CPUs.

SpeechBrain's ``Brain`` converts every trained module to ``SyncBatchNorm``
under ``torchrun``, which only works on GPUs: a CPU run with the gloo
backend stops at once. :class:`DistributedBrain` keeps plain batch norm on
CPUs (SyncBatchNorm on GPUs, as SpeechBrain does); lets a recipe name the
modules whose parameters are not used at every step (an adversary head, a
loss's classifier switched off by its weight) so that DDP looks for unused
parameters there only; keeps ``--debug`` checkpoints in the run's save
folder, one for every process; and unwraps the modules after training, so
that evaluation runs on one process with the plain modules. It also tells
the recipes' schedules how far training has come (:meth:`progress`).

:func:`ddp_destroy_group` ends a ``torchrun`` process's part in the group
once its run is done, so that the process exits without the group's
threads.
"""

import gc

import speechbrain as sb
import torch

# Imported before any process group exists, on purpose: its functions take
# ``group=group.WORLD`` as a default argument, evaluated on import. Imported
# once the group exists (DDP imports it through torch._dynamo), they would
# hold the group for the life of the process, so that destroying it could
# not stop its threads (see ddp_destroy_group).
import torch.distributed.nn  # noqa: F401
from speechbrain.utils.distributed import ddp_barrier
from torch.nn.parallel import DistributedDataParallel


def uses_sync_batchnorm(device):
    """Whether DDP modules on ``device`` get synchronised batch norm.

    ``SyncBatchNorm`` needs CUDA tensors: on a CPU each process keeps its
    own batch statistics (plain batch norm, as without DDP).

    Example
    -------
    >>> uses_sync_batchnorm("cpu"), uses_sync_batchnorm("cuda:1")
    (False, True)
    """
    return torch.device(device).type == "cuda"


class DistributedBrain(sb.core.Brain):
    """A ``Brain`` whose DDP wrapping works on CPUs (gloo) and GPUs (NCCL).

    Subclasses list in :attr:`sometimes_unused` the modules whose
    parameters may get no gradient in a step; the run option
    ``find_unused_parameters`` still applies to every module.

    Example
    -------
    >>> brain = DistributedBrain(
    ...     modules={"net": torch.nn.BatchNorm1d(2)},
    ...     run_opts={"device": "cpu"},
    ... )
    >>> brain.unwrap_distributed()
    >>> type(brain.modules.net).__name__
    'BatchNorm1d'
    """

    #: Names of modules whose parameters are not used at every step.
    sometimes_unused = ()

    def __init__(
        self,
        modules=None,
        opt_class=None,
        hparams=None,
        run_opts=None,
        checkpointer=None,
    ):
        save_dir = getattr(checkpointer, "checkpoints_dir", None)
        super().__init__(modules, opt_class, hparams, run_opts, checkpointer)
        if self.distributed_launch and hasattr(checkpointer, "tempdir"):
            # --debug gives each process a temporary checkpoint folder of
            # its own; the main process saves into its own only, and
            # SpeechBrain's clean-up of old checkpoints then waits forever
            # for the others. All processes share the run's save folder.
            checkpointer.checkpoints_dir = save_dir
            checkpointer.tempdir.cleanup()
            del checkpointer.tempdir

    def _wrap_distributed(self):
        """Wrap each trained module in DDP; SyncBatchNorm only on GPUs."""
        if not self.distributed_launch:
            return super()._wrap_distributed()
        gpu = uses_sync_batchnorm(self.device)
        for name, module in self.modules.items():
            if not any(p.requires_grad for p in module.parameters()):
                continue
            if gpu:
                module = torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
            self.modules[name] = DistributedDataParallel(
                module,
                device_ids=[self.device] if gpu else None,
                find_unused_parameters=self.find_unused_parameters
                or name in self.sometimes_unused,
            )

    def fit(self, *args, **kwargs):
        """``Brain.fit``, then :meth:`unwrap_distributed`."""
        try:
            return super().fit(*args, **kwargs)
        finally:
            self.unwrap_distributed()

    def unwrap_distributed(self):
        """Put the plain modules back in place of their DDP wrappers.

        After training, evaluation runs on the main process alone (a DDP
        module's forward may wait for the other processes), and a second
        ``fit`` wraps the plain modules again.
        """
        for name, module in self.modules.items():
            if isinstance(module, DistributedDataParallel):
                self.modules[name] = module.module

    def progress(self):
        """Fraction of training done, for schedules such as the gradient
        reversal's: ``epoch`` and ``step`` of ``steps_per_epoch`` and
        ``number_of_epochs`` (hyperparameters), see
        :func:`training_progress`.

        Example
        -------
        >>> brain = DistributedBrain(
        ...     hparams={"steps_per_epoch": 4, "number_of_epochs": 2},
        ...     run_opts={"device": "cpu"},
        ... )
        >>> brain.epoch, brain.step = 2, 2
        >>> brain.progress()
        0.625
        """
        return training_progress(
            self.epoch,
            self.step,
            self.hparams.steps_per_epoch,
            self.hparams.number_of_epochs,
        )


def training_progress(epoch, step, steps_per_epoch, n_epochs):
    """Fraction of training done at ``step`` (from 1) of ``epoch`` (from
    1), clipped to ``[0, 1]``: the clock of a reversal schedule.

    Example
    -------
    >>> training_progress(2, 1, steps_per_epoch=10, n_epochs=4)
    0.25
    >>> training_progress(5, 1, steps_per_epoch=10, n_epochs=4)
    1.0
    """
    done = (epoch - 1) + (step - 1) / steps_per_epoch
    return min(1.0, max(0.0, done / n_epochs))


def ddp_destroy_group():
    """End this process's part in the DDP group, once the run is done.

    Every process waits for the others (SpeechBrain's ``ddp_barrier``),
    then destroys the group, which stops its threads while Python still
    runs. A process that exits with the group alive can abort after a
    successful run ("terminate called without an active exception"): a
    gloo worker thread that frees the tensors of the last collective late
    (a busy machine) asks for the GIL while the interpreter shuts down,
    Python ends the thread there, and C++ aborts the process. The recipes
    call it on every process once ``main()`` has returned; outside DDP it
    does nothing.

    Example
    -------
    >>> ddp_destroy_group()
    >>> torch.distributed.is_initialized()
    False
    """
    if not torch.distributed.is_initialized():
        return
    ddp_barrier()
    # A DDP wrapper left in a reference cycle would keep the group alive.
    gc.collect()
    torch.distributed.destroy_process_group()
