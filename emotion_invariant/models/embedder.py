"""The embedder every recipe shares: features, normalisation, encoder.

An ECAPA-TDNN embeds a batch as SpeechBrain's ``EncoderClassifier`` does:
filterbank features, mean (and variance) normalisation over each sentence
or the corpus, then the encoder, in that order. Training, evaluation and
clustering all embed through :func:`embed`, so they cannot drift apart.
"""

#: The speaker recipe's ECAPA-TDNN sizes
#: (``hparams/speaker_verification/ecapa_base.yaml``, checked by the tests;
#: ``se_channels`` is ECAPA_TDNN's default): what a speaker model folder is
#: built with unless told otherwise.
ECAPA_SIZES = {
    "n_mels": 80,
    "channels": (128, 128, 128, 128, 384),
    "attention_channels": 64,
    "se_channels": 128,
    "lin_neurons": 192,
}
#: Kernel sizes and dilations of the five ECAPA-TDNN blocks (SpeechBrain's).
KERNEL_SIZES = (5, 3, 3, 3, 1)
DILATIONS = (1, 2, 3, 4, 1)


def embed(modules, wavs, lens):
    """Embeddings ``[B, 1, D]`` of padded waveforms.

    Arguments
    ---------
    modules : mapping or object
        ``compute_features``, ``mean_var_norm`` and ``embedding_model``, as
        attributes (a Brain's ``modules``) or keys.
    wavs : torch.Tensor
        ``[B, T]`` zero-padded waveforms.
    lens : torch.Tensor
        ``[B]`` relative lengths.

    Returns
    -------
    torch.Tensor
        What ``embedding_model`` returns: ``[B, 1, D]`` for ECAPA-TDNN.

    Example
    -------
    >>> import torch
    >>> from speechbrain.lobes.features import Fbank
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> from speechbrain.processing.features import InputNormalization
    >>> modules = {
    ...     "compute_features": Fbank(n_mels=8),
    ...     "mean_var_norm": InputNormalization(norm_type="sentence",
    ...                                         std_norm=False),
    ...     "embedding_model": ECAPA_TDNN(
    ...         8, channels=[8, 8, 8, 8, 24], lin_neurons=4,
    ...         attention_channels=4, se_channels=4, res2net_scale=2).eval(),
    ... }
    >>> embed(modules, torch.randn(2, 1600), torch.ones(2)).shape
    torch.Size([2, 1, 4])
    """
    if isinstance(modules, dict):
        get = modules.__getitem__
    else:

        def get(name):
            return getattr(modules, name)

    return get("embedding_model")(normalised_features(get, wavs, lens), lens)


def normalised_features(get, wavs, lens):
    """The fbank of ``wavs`` normalised as the encoder expects.

    Arguments
    ---------
    get : callable
        ``get(name)`` returns the module ``compute_features`` or
        ``mean_var_norm``.
    wavs : torch.Tensor
        ``[B, T]`` zero-padded waveforms.
    lens : torch.Tensor
        ``[B]`` relative lengths.

    Returns
    -------
    torch.Tensor
        ``[B, frames, n_mels]``.
    """
    feats = get("compute_features")(wavs)
    return get("mean_var_norm")(feats, lens)
