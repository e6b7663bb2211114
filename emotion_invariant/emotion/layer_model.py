"""A frozen-layer emotion model that SpeechBrain's ``EncoderClassifier``
runs, speaker normalisation included.

An exported frozen-layer run (``python -m emotion_invariant.models.export``)
is a model folder whose ``embedding_model`` is :class:`LayerEmbedding`:
the frozen encoder, its layer statistics
(:func:`~emotion_invariant.emotion.layer_features.encoder_statistics`),
the run's speaker normalisation and its learnt layer weighting
(:class:`~emotion_invariant.emotion.layer_head.LayerPooling`); its
``classifier`` is the run's
:class:`~emotion_invariant.emotion.layer_head.LayerClassifier`. A model
trained on speaker-normalised features needs the speaker's statistics
before it classifies: :func:`enrol_speaker` takes them from a few
utterances of that speaker (no labels)::

    from speechbrain.inference.classifiers import EncoderClassifier
    from emotion_invariant.emotion.layer_model import enrol_speaker

    model = EncoderClassifier.from_hparams(source="ser_model", savedir="tmp")
    enrol_speaker(model, ["alice_1.wav", "alice_2.wav", "alice_3.wav"])
    probs, score, index, label = model.classify_file("alice_4.wav")
"""

import json
import os

import torch
from hyperpyyaml import load_hyperpyyaml

from emotion_invariant.emotion.layer_features import (
    LAYERS,
    encoder_statistics,
    model_key,
)
from emotion_invariant.emotion.layer_head import LayerClassifier, LayerPooling
from emotion_invariant.emotion.speaker_norm import MODES, SpeakerStatistics
from emotion_invariant.models.pretrained import (
    load_pretrained_ecapa,
    load_pretrained_encoder,
)

#: A frozen-layer run's record of its grid and choice, in its run folder.
SELECTION_FILE = "selection.json"


class LayerEmbedding(torch.nn.Module):
    """A frozen encoder's weighted layer features, normalised per speaker.

    Arguments
    ---------
    encoder : torch.nn.Module
        The ECAPA-TDNN (``encoder(feats, lengths)``).
    layer_dims : dict
        Each layer's feature width, in :data:`LAYERS` order.
    layers : list of str
        The layers the head weights.
    dim : int
        Width of the weighted features.
    speaker_norm : str
        ``none``, ``centre`` or ``centre+scale``: how the run normalised
        each speaker's features. With a normalisation, :meth:`enrol` a
        speaker before embedding its utterances.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> encoder = ECAPA_TDNN(8, channels=[8, 8, 8, 8, 24], lin_neurons=4,
    ...                      attention_channels=4, se_channels=4,
    ...                      res2net_scale=2)
    >>> dims = dict(zip(LAYERS, [16, 16, 16, 16, 48, 4]))
    >>> model = LayerEmbedding(encoder, dims, ["mfa"], 3, "centre").eval()
    >>> feats = torch.randn(2, 40, 8)
    >>> model(feats)
    Traceback (most recent call last):
    ...
    RuntimeError: this model normalises each speaker's features \
(speaker_norm: centre): enrol the speaker first (emotion_invariant.emotion.\
layer_model.enrol_speaker)
    >>> with torch.no_grad():
    ...     model.enrol(model.features(feats))
    ...     model(feats).shape
    torch.Size([2, 1, 3])
    """

    def __init__(self, encoder, layer_dims, layers, dim, speaker_norm="none"):
        super().__init__()
        if speaker_norm not in MODES:
            raise ValueError(
                f"speaker_norm: {speaker_norm!r} is not valid; expected one "
                f"of: {', '.join(MODES)}"
            )
        self.encoder = encoder
        self.pooling = LayerPooling(layer_dims, layers, dim)
        self.speaker_norm = speaker_norm
        width = len(self.pooling.shift)
        # The training speakers' average statistics: what a speaker enrolled
        # with a single utterance is normalised with.
        self.register_buffer("population_mean", torch.zeros(width))
        self.register_buffer("population_scale", torch.ones(width))
        # The enrolled speaker's; not saved: a folder holds no speaker.
        self.register_buffer("speaker_mean", torch.zeros(width), False)
        self.register_buffer("speaker_scale", torch.ones(width), False)
        self.enrolled = False

    def features(self, feats, lengths=None):
        """Raw layer features ``[B, F]`` of fbank ``[B, T, n_mels]``."""
        if lengths is None:
            lengths = torch.ones(len(feats), device=feats.device)
        return encoder_statistics(self.encoder, feats, lengths)

    def enrol(self, features, speaker="speaker"):
        """Normalise every utterance from now on with the statistics of
        ``features`` ``[N, F]`` (:meth:`features` of one speaker's
        utterances); with one utterance, with the training speakers'
        average, and a warning naming ``speaker``."""
        stats = SpeakerStatistics(
            self.speaker_norm,
            (self.population_mean.double(), self.population_scale.double()),
        ).fit(features.detach().cpu(), [speaker] * len(features), "enrolment")
        mean, scale = stats.stats.get(speaker) or stats.fallback()
        self.speaker_mean.copy_(mean)
        self.speaker_scale.copy_(scale)
        self.enrolled = True

    def forget(self):
        """Drop the enrolled speaker's statistics."""
        self.enrolled = False

    def forward(self, feats, lengths=None):
        """Weighted features ``[B, 1, dim]`` of fbank ``[B, T, n_mels]``."""
        x = self.features(feats, lengths)
        if self.speaker_norm != "none":
            if not self.enrolled:
                raise RuntimeError(
                    "this model normalises each speaker's features "
                    f"(speaker_norm: {self.speaker_norm}): enrol the speaker "
                    "first (emotion_invariant.emotion.layer_model."
                    "enrol_speaker)"
                )
            x = (x - self.speaker_mean) / self.speaker_scale
        return self.pooling(x).unsqueeze(1)

    def extra_repr(self):
        return f"speaker_norm={self.speaker_norm!r}"


def enrol_speaker(classifier, signals, speaker="speaker"):
    """Give a loaded frozen-layer emotion model one speaker's statistics.

    Arguments
    ---------
    classifier : speechbrain.inference.classifiers.EncoderClassifier
        An exported frozen-layer model, loaded.
    signals : list
        That speaker's utterances: audio files, or 1-D waveforms at the
        model's sample rate. Any utterances, no labels; two or more.
    speaker : str
        Its name, for the warning given with a single utterance.

    Returns
    -------
    int
        The utterances enrolled.
    """
    model = classifier.mods.embedding_model
    if not isinstance(model, LayerEmbedding):
        raise TypeError(
            "enrol_speaker: not a frozen-layer emotion model (its "
            f"embedding_model is a {type(model).__name__})"
        )
    rows = []
    with torch.no_grad():
        for signal in signals:
            if isinstance(signal, (str, os.PathLike)):
                signal = classifier.load_audio(os.fspath(signal))
            wavs = torch.as_tensor(signal).reshape(1, -1).to(classifier.device)
            lens = torch.ones(1, device=wavs.device)
            feats = classifier.mods.compute_features(wavs)
            feats = classifier.mods.mean_var_norm(feats, lens)
            rows.append(model.features(feats, lens))
    if not rows:
        raise ValueError(f"enrol_speaker: no utterance of {speaker!r}")
    model.enrol(torch.cat(rows), speaker)
    return len(rows)


def layer_dims_of(encoder_cfg):
    """:func:`~emotion_invariant.emotion.layer_features.layer_dims` from
    an ECAPA-TDNN's settings (``channels``, ``lin_neurons``).

    Example
    -------
    >>> layer_dims_of({"channels": [4, 4, 4, 4, 12], "lin_neurons": 3})
    {'block0': 8, 'block1': 8, 'block2': 8, 'block3': 8, 'mfa': 24, \
'embedding': 3}
    """
    channels = [int(c) for c in encoder_cfg["channels"]]
    widths = [2 * c for c in channels] + [int(encoder_cfg["lin_neurons"])]
    return dict(zip(LAYERS, widths))


def export_modules(cfg, point, n_classes):
    """The arguments of the exported ``embedding_model`` and
    ``classifier`` of a frozen-layer run.

    Arguments
    ---------
    cfg : dict
        The run's resolved ``hyperparams.yaml`` (its ``embedding_model``
        entry is the encoder's, kept as it is).
    point : dict
        The grid point chosen (``head_type``, ``layer_set``).
    n_classes : int
        Emotions.

    Returns
    -------
    tuple
        ``((LayerEmbedding, arguments), (LayerClassifier, arguments))``.
    """
    encoder = cfg["embedding_model"]
    embedding = {
        "encoder": encoder,
        "layer_dims": layer_dims_of(encoder),
        "layers": list(cfg["layer_sets"][point["layer_set"]]),
        "dim": int(cfg["layer_dim"]),
        "speaker_norm": str(cfg["speaker_norm"]),
    }
    classifier = {
        "dim": int(cfg["layer_dim"]),
        "n_classes": int(n_classes),
        "head_type": str(point["head_type"]),
        "hidden": int(cfg["emo_hidden"]),
        "dropout": float(cfg["emo_dropout"]),
    }
    return (LayerEmbedding, embedding), (LayerClassifier, classifier)


def load_frozen_encoder(path, encoder, normalizer, norm_type):
    """Load the frozen encoder of a frozen-layer run, and its fbank
    statistics with ``norm_type: global``.

    Arguments
    ---------
    path : str
        ``pretrained_encoder``: a published model folder, an
        ``encoder.ckpt``, or a recipe's checkpoints (a ``CKPT+...`` folder
        or the ``save`` folder holding them).
    encoder : torch.nn.Module
        The ECAPA-TDNN to load.
    normalizer : speechbrain.processing.features.InputNormalization
        The fbank normalisation, given the statistics the encoder was
        trained with (the checkpoint's ``normalizer.ckpt``) for ``global``.
    norm_type : str
        The run's ``norm_type``.

    Returns
    -------
    str
        The file or checkpoint folder loaded.

    Raises
    ------
    ValueError
        For ``global`` without a ``normalizer.ckpt`` beside the encoder.
    """
    used = load_pretrained_encoder(path, encoder)
    if norm_type != "global":
        return used
    if not os.path.isfile(os.path.join(used, "normalizer.ckpt")):
        raise ValueError(
            f"{path}: norm_type global normalises the fbank with the "
            "statistics the encoder was trained with, and there is no "
            "normalizer.ckpt beside it; point pretrained_encoder at the "
            "recipe's checkpoint (a CKPT+... folder or its save folder) "
            "or use --norm_type sentence"
        )
    load_pretrained_ecapa(
        used,
        encoder,
        mean_var_norm_emb=normalizer,
        names={"mean_var_norm_emb": "normalizer.ckpt"},
    )
    return used


def point_name(point):
    """A grid point's name (its checkpoints' folder under ``save``).

    Example
    -------
    >>> point_name({"head_type": "mlp", "layer_set": "all", "lr": 0.0003})
    'mlp-all-lr0.0003'
    """
    return f"{point['head_type']}-{point['layer_set']}-lr{point['lr']:g}"


def read_selection_file(run_folder):
    """A frozen-layer run's ``selection.json``, its chosen grid point and
    that point's checkpoints folder.

    Raises
    ------
    ValueError
        Naming the file when it is missing or holds no single choice.
    """
    path = os.path.join(run_folder, SELECTION_FILE)
    if not os.path.isfile(path):
        raise ValueError(
            f"{path}: missing; the grid point chosen is read from it (train "
            "the run first: recipes/emotion_recognition/train.py)"
        )
    try:
        with open(path, encoding="utf-8") as f:
            selection = json.load(f)
        chosen = [row for row in selection["points"] if row.get("chosen")]
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"{path}: unreadable ({err})") from None
    if len(chosen) != 1:
        raise ValueError(f"{path}: no single chosen grid point")
    point = chosen[0]["point"]
    save = os.path.join(run_folder, "save", point_name(point))
    return selection, point, save


def write_model_files(folder, cfg, ckpt, selection):
    """Write ``embedding_model.ckpt`` and ``classifier.ckpt`` of an
    exported frozen-layer run into ``folder``.

    The encoder (and, with ``norm_type: global``, its fbank statistics,
    written as ``mean_var_norm.ckpt``) is loaded from the run's
    ``pretrained_encoder`` (:func:`load_frozen_encoder`) and checked to be
    the one the run's features came from; the layer
    weighting, the training speakers' statistics and the classifier come
    from the chosen point's ``layer_head.ckpt``.

    Arguments
    ---------
    folder : str or os.PathLike
        The exported folder, with its ``hyperparams.yaml``.
    cfg : dict
        The run's resolved ``hyperparams.yaml``.
    ckpt : str or os.PathLike
        The chosen point's checkpoint.
    selection : dict
        The run's ``selection.json`` (:func:`read_selection_file`), whose
        ``feature_model`` is the :func:`model_key` of that encoder.

    Raises
    ------
    ValueError
        When there is no encoder file (``pretrained_encoder: null``), or
        it is not the encoder the features were computed with.
    emotion_invariant.models.pretrained.PretrainedError
        When it does not load.
    """
    if not cfg.get("pretrained_encoder"):
        raise ValueError(
            "pretrained_encoder: null; the run's frozen encoder was "
            "initialised at random, so no file holds it to export"
        )
    with open(os.path.join(folder, "hyperparams.yaml"), encoding="utf-8") as f:
        hparams = load_hyperpyyaml(f)
    model, classifier = hparams["embedding_model"], hparams["classifier"]
    normalizer = hparams["mean_var_norm"]
    load_frozen_encoder(
        cfg["pretrained_encoder"], model.encoder, normalizer, cfg["norm_type"]
    )
    if cfg["norm_type"] == "global":
        normalizer._save(os.path.join(folder, "mean_var_norm.ckpt"))
    modules = {
        "compute_features": hparams["compute_features"],
        "mean_var_norm": hparams["mean_var_norm"],
        "embedding_model": model.encoder,
    }
    settings = selection.get("feature_settings", {})
    if model_key(modules, settings) != selection.get("feature_model"):
        raise ValueError(
            f"{cfg['pretrained_encoder']}: not the encoder the run's "
            "features were computed with (changed since training?)"
        )
    state = torch.load(
        os.path.join(ckpt, "layer_head.ckpt"),
        map_location="cpu",
        weights_only=True,
    )
    model.pooling.load_state_dict(_part(state, "pooling."))
    model.population_mean.copy_(state["population_mean"])
    model.population_scale.copy_(state["population_scale"])
    classifier.load_state_dict(_part(state, "classifier."))
    torch.save(model.state_dict(), os.path.join(folder, "embedding_model.ckpt"))
    torch.save(classifier.state_dict(), os.path.join(folder, "classifier.ckpt"))


def _part(state, prefix):
    return {
        k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)
    }
