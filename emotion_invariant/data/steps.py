"""Training steps per epoch, checked before training starts.

A training set smaller than one batch under ``drop_last`` gives an epoch
of zero steps: the model is never trained, yet an evaluation report of
the untrained model would follow. Such a run is refused up front.
"""

import logging
import math

import speechbrain as sb

from emotion_invariant.data.manifest import ManifestError

logger = logging.getLogger(__name__)


def training_steps(n_items, loader_options, source, debug=False):
    """The optimizer steps of one epoch, refusing zero.

    Arguments
    ---------
    n_items : int
        Training utterances (anchors) in the dataset.
    loader_options : dict
        The training ``DataLoader`` options: ``batch_size``, ``drop_last``,
        a ``sampler`` (its length is the epoch) or a ``batch_sampler``
        (its length is the number of steps).
    source : str
        The training manifest, for the message.
    debug : bool
        SpeechBrain's ``--debug``: a smoke run of two batches, which runs on
        any corpus, so a batch larger than the training set shrinks to it
        (with a warning) instead of failing.

    Returns
    -------
    tuple
        ``(loader_options, steps)``: the options to train with (a copy,
        changed only by ``debug``) and the steps per epoch.

    Raises
    ------
    ManifestError
        When an epoch would have no step; the message says why and what to
        change.

    Example
    -------
    >>> training_steps(70, {"batch_size": 32, "drop_last": True}, "t.csv")
    ({'batch_size': 32, 'drop_last': True}, 2)
    >>> training_steps(24, {"batch_size": 32, "drop_last": True}, "t.csv")
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: t.csv: 24 training \
utterance(s) make no batch of batch_size 32 with drop_last: True...
    >>> training_steps(24, {"batch_size": 32, "drop_last": True}, "t.csv",
    ...                debug=True)
    ({'batch_size': 24, 'drop_last': True}, 1)
    """
    options = dict(loader_options)
    if options.get("batch_sampler") is not None:
        steps = len(options["batch_sampler"])
        if steps == 0:
            raise ManifestError(
                f"{source}: the batch sampler makes no batch of the "
                f"{n_items} training utterance(s), so an epoch would train "
                "nothing: add training data"
            )
        return options, steps
    sampler = options.get("sampler")
    n = len(sampler) if sampler is not None else n_items
    if n == 0:
        raise ManifestError(
            f"{source}: no training utterance, so an epoch would train "
            "nothing: add training data"
        )
    batch_size = options.get("batch_size", 1)
    drop_last = options.get("drop_last", False)
    if drop_last and n < batch_size:
        if debug:
            logger.warning(
                "--debug: %d training utterance(s) in %s, fewer than "
                "batch_size %d: batches of %d",
                n,
                source,
                batch_size,
                n,
            )
            options["batch_size"] = batch_size = n
        else:
            raise ManifestError(
                f"{source}: {n} training utterance(s) make no batch of "
                f"batch_size {batch_size} with drop_last: True, so an epoch "
                f"would train nothing: set --batch_size={n} or lower, set "
                "drop_last: False in train_dataloader_options, or add "
                "training data"
            )
    steps = n // batch_size if drop_last else math.ceil(n / batch_size)
    return options, steps


def epoch_sampler(hparams, train):
    """A sampler of ``utterances_per_epoch`` random utterances, else None.

    Fine-tuning a large pretrained model on a CPU is paid per step: this
    fixes the budget of an epoch whatever the corpus size. The sampler
    replaces the loader's shuffle in ``train_dataloader_options``.

    Example
    -------
    >>> hparams = {"utterances_per_epoch": 3, "speakers_per_batch": None,
    ...            "seed": 0, "train_dataloader_options": {"shuffle": True}}
    >>> sampler = epoch_sampler(hparams, list(range(10)))
    >>> len(sampler), "shuffle" in hparams["train_dataloader_options"]
    (3, False)
    """
    n = hparams["utterances_per_epoch"]
    if n is None:
        return None
    if hparams["speakers_per_batch"] is not None:
        raise ValueError(
            "utterances_per_epoch and speakers_per_batch cannot both be set"
        )
    sampler = sb.dataio.sampler.ReproducibleRandomSampler(
        train, seed=hparams["seed"], num_samples=n
    )
    options = dict(hparams["train_dataloader_options"])
    options.pop("shuffle", None)
    hparams["train_dataloader_options"] = {**options, "sampler": sampler}
    return sampler
