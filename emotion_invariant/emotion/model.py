"""The emotion classifier's heads, sized to the run's labels and speakers.

Training and evaluation build the same model: an emotion head with one
output per training emotion, a speaker adversary head with one per
training speaker (at least two), and the encoder, optionally started from a
pretraining run or a speaker model.
"""

from emotion_invariant.models.finetune import resize_output
from emotion_invariant.models.pretrained import load_pretrained_encoder


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
