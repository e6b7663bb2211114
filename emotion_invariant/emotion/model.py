"""The emotion classifier's heads, sized to the run's labels and speakers.

Training and evaluation build the same model: an emotion head with one
output per training emotion, a speaker adversary head with one per
training speaker (at least two), and the encoder, optionally started from a
pretraining run or a speaker model.
"""

import logging

from emotion_invariant.data.manifest import ManifestError
from emotion_invariant.losses.adversarial import BatchStandardize
from emotion_invariant.models.finetune import (
    freeze_lower_blocks,
    resize_output,
)
from emotion_invariant.models.pretrained import (
    load_pretrained_encoder,
    warn_other_norm,
)

logger = logging.getLogger(__name__)


class EmbeddingNorm(BatchStandardize):
    """Standardise each embedding dimension before the emotion head.

    A speaker model's embeddings are far from unit scale (the published
    ECAPA's have norms in the hundreds), so a freshly initialised head on
    them starts with huge logits and needs many steps to shrink its
    weights; a linear probe standardises its input first. Enabled, this is
    a batch norm without affine weights (running statistics at
    evaluation); disabled, the identity, with no state.

    Arguments
    ---------
    features : int
        Embedding size (the last dimension of the input).
    enabled : bool
        Whether to standardise.

    Example
    -------
    >>> import torch
    >>> norm = EmbeddingNorm(4).train()
    >>> y = norm(100 + 50 * torch.randn(64, 1, 4))
    >>> y.shape, bool(y.mean((0, 1)).abs().max() < 1e-4)
    (torch.Size([64, 1, 4]), True)
    >>> bool(norm.norm.running_mean.abs().min() > 5)  # tracked for eval
    True
    >>> x = torch.randn(2, 1, 4)
    >>> torch.equal(EmbeddingNorm(4, enabled=False)(x), x)
    True
    """

    def __init__(self, features, enabled=True):
        super().__init__(features, running_stats=True)
        if not enabled:
            self.norm = None

    def forward(self, x):
        """Standardise ``x`` ``[..., features]``; the identity if disabled."""
        return x if self.norm is None else super().forward(x)


def size_model(hparams, n_labels, n_speakers):
    """Size the heads and load ``pretrained_encoder`` when it is set.

    Arguments
    ---------
    hparams : dict
        ``emotion_classifier``, ``adversary``, ``embedding_model`` and
        ``pretrained_encoder``.
    n_labels, n_speakers : int
        Training emotions and speakers.

    Returns
    -------
    str or None
        The encoder file or folder loaded, if any.

    Example
    -------
    >>> import torch
    >>> from emotion_invariant.losses.adversarial import SpeakerAdversary
    >>> hparams = {
    ...     "emotion_classifier": torch.nn.Sequential(torch.nn.Linear(4, 2)),
    ...     "adversary": SpeakerAdversary(4, 2),
    ...     "embedding_model": None, "pretrained_encoder": None}
    >>> size_model(hparams, 5, 1) is None
    True
    >>> hparams["emotion_classifier"][-1].out_features
    5
    """
    resize_output(hparams["emotion_classifier"], n_labels)
    resize_output(hparams["adversary"].head, max(2, n_speakers))
    if not hparams["pretrained_encoder"]:
        return None
    # A checkpoint of the run, if any, is recovered over it in fit().
    return load_pretrained_encoder(
        hparams["pretrained_encoder"], hparams["embedding_model"]
    )


def setup_model(hparams):
    """Build the model of one run on top of :func:`size_model`.

    Refuses a speaker adversary with fewer than two training speakers,
    warns about an entropy loss on a head that is never trained and about
    a pretrained encoder normalised otherwise than ``norm_type``, and
    freezes the encoder's lower ``freeze_blocks`` blocks (their list goes
    to ``hparams["frozen_blocks"]``).

    Arguments
    ---------
    hparams : dict
        What :func:`size_model` reads, ``emotion_labels`` and
        ``train_speakers`` (from the datasets), ``adv_weight``,
        ``entropy_weight``, ``train_annotation``, ``norm_type`` and
        ``freeze_blocks``.

    Example
    -------
    >>> import torch
    >>> from emotion_invariant.losses.adversarial import SpeakerAdversary
    >>> hparams = {
    ...     "emotion_classifier": torch.nn.Sequential(torch.nn.Linear(4, 2)),
    ...     "adversary": SpeakerAdversary(4, 2), "embedding_model": None,
    ...     "pretrained_encoder": None, "emotion_labels": ["neu", "ang"],
    ...     "train_speakers": ["a"], "adv_weight": 1.0, "entropy_weight": 0,
    ...     "train_annotation": "train.csv"}
    >>> setup_model(hparams)
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: train.csv: the speaker \
adversary needs at least 2 training speakers, got 1
    """
    n_speakers = len(hparams["train_speakers"])
    adversarial = hparams["adv_weight"] > 0 or hparams["entropy_weight"] > 0
    if adversarial and n_speakers < 2:
        raise ManifestError(
            f"{hparams['train_annotation']}: the speaker adversary needs at "
            f"least 2 training speakers, got {n_speakers}"
        )
    if hparams["entropy_weight"] > 0 and hparams["adv_weight"] == 0:
        logger.warning(
            "entropy_weight > 0 with adv_weight = 0: the adversary head is "
            "never trained, so the entropy loss flattens an untrained "
            "classifier's posterior"
        )
    used = size_model(hparams, len(hparams["emotion_labels"]), n_speakers)
    if used:
        warn_other_norm(used, hparams["norm_type"])
    hparams["frozen_blocks"] = freeze_lower_blocks(
        hparams["embedding_model"], hparams["freeze_blocks"]
    )
