"""Frozen multi-layer features of an ECAPA-TDNN, computed once and cached.

The SUPERB recipe for small corpora (Yang et al., Interspeech 2021) keeps
the upstream model frozen and learns a light head over all its layers. The
layers of SpeechBrain's ECAPA-TDNN are its four blocks (the TDNN block and
the three SE-Res2Net blocks), the multi-layer feature aggregation (``mfa``)
and the final embedding; each frame-level output becomes its statistics
over the utterance's frames (mean and standard deviation, padding left
out), the embedding is taken as it is. One utterance's features are the
concatenation of the layers' vectors, in :data:`LAYERS` order.

They are computed once per utterance, in eval mode and without gradients,
and kept on disk (:class:`FeatureCache`) under a key of the model (a hash
of its weights and of the feature settings) and of the audio file (its
real path, segment, size and modification time), so that every epoch,
seed and grid point of a study reads tensors instead of decoding audio.
"""

import hashlib
import json
import logging
import os

import torch
from speechbrain.dataio.dataio import length_to_mask
from tqdm import tqdm

from emotion_invariant.atomic import atomic_path
from emotion_invariant.data.audio import read_audio
from emotion_invariant.data.manifest import resolve_wav
from emotion_invariant.models.embedder import normalised_features
from emotion_invariant.scoring.extract import pad_batch

logger = logging.getLogger(__name__)

#: The layers of an ECAPA-TDNN, from the input up.
LAYERS = ("block0", "block1", "block2", "block3", "mfa", "embedding")
#: Changes whenever the features of the same model and audio would change,
#: so that older cache entries are not read as current ones.
FEATURES_VERSION = 1


def layer_dims(embedding_model):
    """The width of each layer's feature vector, in :data:`LAYERS` order.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
    >>> model = ECAPA_TDNN(8, channels=[8, 8, 8, 8, 24], lin_neurons=4,
    ...                    attention_channels=4, se_channels=4, res2net_scale=2)
    >>> layer_dims(model)
    {'block0': 16, 'block1': 16, 'block2': 16, 'block3': 16, 'mfa': 48, \
'embedding': 4}
    """
    channels = list(embedding_model.channels)
    if len(embedding_model.blocks) != 4 or len(channels) != 5:
        raise ValueError(
            "layer features need an ECAPA-TDNN of four blocks and five "
            f"channel sizes, got {len(embedding_model.blocks)} blocks and "
            f"channels {channels}"
        )
    dims = {f"block{i}": 2 * channels[i] for i in range(4)}
    dims["mfa"] = 2 * channels[4]
    dims["embedding"] = embedding_model.fc.conv.out_channels
    return dims


def masked_statistics(x, lengths):
    """Mean and standard deviation over the valid frames of ``[B, C, T]``.

    Frames are valid as in SpeechBrain's attentive statistics pooling:
    the first ``lengths * T`` of each row.

    Example
    -------
    >>> x = torch.tensor([[[1.0, 3.0, 100.0]]])
    >>> masked_statistics(x, torch.tensor([2 / 3]))
    tensor([[2., 1.]])
    """
    frames = x.shape[-1]
    mask = length_to_mask(lengths * frames, max_len=frames, device=x.device)
    mask = mask.unsqueeze(1).to(x.dtype)
    total = mask.sum(-1)
    mean = (x * mask).sum(-1) / total
    var = ((x - mean.unsqueeze(-1)).pow(2) * mask).sum(-1) / total
    return torch.cat([mean, var.clamp(min=1e-12).sqrt()], dim=1)


def encoder_statistics(model, feats, lens):
    """Features ``[B, F]`` of an ECAPA-TDNN's input ``[B, T, n_mels]``.

    The encoder runs its own ``forward`` (so the embedding is exactly the
    one it gives); hooks keep the frame-level outputs of its blocks and of
    ``mfa``, whose :func:`masked_statistics` come first, in
    :data:`LAYERS` order, then the embedding.
    """
    outputs = []
    hooks = [
        layer.register_forward_hook(lambda m, i, out: outputs.append(out))
        for layer in (*model.blocks, model.mfa)
    ]
    try:
        embedding = model(feats, lens)
    finally:
        for hook in hooks:
            hook.remove()
    parts = [masked_statistics(out, lens) for out in outputs]
    return torch.cat([*parts, embedding.reshape(len(feats), -1)], dim=1)


def layer_statistics(modules, wavs, lens):
    """Features ``[B, F]`` of padded waveforms: every layer's, concatenated
    (see :func:`encoder_statistics`).

    Arguments
    ---------
    modules : mapping
        ``compute_features``, ``mean_var_norm`` and ``embedding_model`` (an
        ECAPA-TDNN), as keys.
    wavs : torch.Tensor
        ``[B, T]`` zero-padded waveforms.
    lens : torch.Tensor
        ``[B]`` relative lengths.

    Example
    -------
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
    >>> with torch.no_grad():
    ...     feats = layer_statistics(modules, torch.randn(2, 1600),
    ...                              torch.ones(2))
    >>> feats.shape  # 4 blocks of 2 x 8, mfa 2 x 24, embedding 4
    torch.Size([2, 116])
    """
    feats = normalised_features(modules.__getitem__, wavs, lens)
    return encoder_statistics(modules["embedding_model"], feats, lens)


def model_key(modules, settings):
    """A hash of the encoder's weights and of the feature settings.

    Arguments
    ---------
    modules : mapping
        ``compute_features``, ``mean_var_norm`` and ``embedding_model``.
    settings : dict
        What else shapes the features (``sample_rate``, ``n_mels``,
        ``norm_type``); plain values.

    Returns
    -------
    str
        40 hex digits; any changed weight, statistic or setting changes it.

    Example
    -------
    >>> net = {"embedding_model": torch.nn.Linear(2, 2)}
    >>> key = model_key(net, {"sample_rate": 16000})
    >>> key == model_key(net, {"sample_rate": 8000})
    False
    >>> with torch.no_grad():
    ...     net["embedding_model"].weight[0, 0] += 1
    >>> key == model_key(net, {"sample_rate": 16000})
    False
    """
    digest = hashlib.sha256()
    head = {"version": FEATURES_VERSION, "layers": LAYERS, **settings}
    digest.update(json.dumps(head, sort_keys=True, default=str).encode())
    for name in sorted(modules):
        module = modules[name]
        digest.update(f"{name}:{type(module).__name__}".encode())
        state = dict(module.state_dict())
        # InputNormalization keeps its statistics outside its state dict.
        for attr in ("norm_type", "std_norm", "glob_mean", "glob_std"):
            if hasattr(module, attr):
                state[attr] = getattr(module, attr)
        for key in sorted(state):
            value = state[key]
            digest.update(key.encode())
            if isinstance(value, torch.Tensor):
                value = value.detach().cpu().contiguous().reshape(-1)
                digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
                digest.update(value.view(torch.uint8).numpy().tobytes())
            else:
                digest.update(repr(value).encode())
    return digest.hexdigest()[:40]


def row_speed(row):
    """The speed factor a row's audio is played at (``speed``; None for
    the audio as recorded).

    Example
    -------
    >>> row_speed({"speed": "0.9"}), row_speed({"speed": 1}), row_speed({})
    (0.9, None, None)
    """
    speed = row.get("speed")
    if speed in (None, ""):
        return None
    speed = float(speed)
    return None if speed == 1.0 else speed


def perturb_speed(signal, speed, sample_rate=16000):
    """``signal`` played ``speed`` times faster (tempo and pitch alike, as
    SpeechBrain's ``SpeedPerturb``): resampled to ``sample_rate / speed``
    and read at ``sample_rate``. The new rate is rounded to 100 Hz, which
    keeps the resampling ratio small (16 kHz at 0.9: 17,800 Hz, 80:89,
    where 17,778 Hz would be 8,000:8,889 and take seconds a file).

    Example
    -------
    >>> perturb_speed(torch.zeros(16000), 1.25).shape
    torch.Size([12800])
    >>> perturb_speed(torch.zeros(16000), 0.9).shape
    torch.Size([17800])
    """
    import torchaudio

    rate = 100 * int(round(sample_rate / speed / 100))
    return torchaudio.functional.resample(signal, sample_rate, rate)


def _segment(row):
    return tuple(
        int(row[k]) if row.get(k) not in (None, "") else None
        for k in ("start", "stop")
    )


class FeatureCache:
    """One model's features on disk, an entry per audio file (segment).

    An entry is a small torch file named by a hash of the file's real path
    and segment, under a folder named by the model's key, holding the
    features and the file's size and modification time (nanoseconds) when
    they were computed: a changed file is computed again, a changed model
    looks in another folder. The fingerprint is the one the audio check's
    cache trusts (size and ``mtime_ns``): reading every file to hash its
    content would cost as much as decoding it, which the cache is there to
    avoid. Entries are written whole (temporary file, then rename), so an
    interrupted extraction keeps what it finished and two runs sharing the
    folder cannot read a half-written entry.

    Arguments
    ---------
    folder : str
        The cache folder (shared by every model; created when needed).
    key : str
        :func:`model_key` of the model.

    Example
    -------
    >>> import tempfile
    >>> cache = FeatureCache(tempfile.mkdtemp(), "abc")
    >>> row = {"ID": "u", "wav": __file__}
    >>> cache.get(row) is None
    True
    >>> cache.put(row, torch.ones(3))
    >>> cache.get(row)
    tensor([1., 1., 1.])
    """

    def __init__(self, folder, key):
        self.folder = os.path.join(os.path.expanduser(folder), key[:16])
        self.key = key

    def _entry(self, row, data_root=None):
        path = os.path.realpath(resolve_wav(row["wav"], data_root))
        start, stop = _segment(row)
        source = f"{path}|{start}|{stop}"
        if row_speed(row) is not None:
            source += f"|speed={row_speed(row)}"
        name = hashlib.sha256(source.encode()).hexdigest()
        entry = os.path.join(self.folder, name[:2], f"{name[:32]}.pt")
        return path, entry

    def get(self, row, data_root=None):
        """The stored features of ``row``'s audio, or None when there are
        none, or when the file changed since (or cannot be read)."""
        path, entry = self._entry(row, data_root)
        try:
            stat = os.stat(path)
            stored = torch.load(entry, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            return None
        except Exception as err:  # a damaged entry is computed again
            logger.warning("feature cache: ignoring %s (%s)", entry, err)
            return None
        if (
            not isinstance(stored, dict)
            or stored.get("model") != self.key
            or stored.get("fingerprint") != [stat.st_size, stat.st_mtime_ns]
        ):
            return None
        return stored.get("features")

    def put(self, row, features, data_root=None):
        """Store ``features`` of ``row``'s audio (whole, or not at all)."""
        path, entry = self._entry(row, data_root)
        stat = os.stat(path)
        stored = {
            "model": self.key,
            "fingerprint": [stat.st_size, stat.st_mtime_ns],
            "features": features.detach().cpu().float().clone(),
        }
        with atomic_path(entry) as tmp:
            torch.save(stored, tmp)


def layer_features(
    rows,
    modules,
    cache_folder,
    settings,
    data_root=None,
    sample_rate=16000,
    batch_size=1,
    device="cpu",
    progress=True,
    key=None,
):
    """The layer features of ``rows``, computed only where not cached.

    Arguments
    ---------
    rows : list of dict
        Manifest rows (``ID``, ``wav``, ``duration``; ``start``/``stop``;
        ``speed``: :func:`perturb_speed` the audio first, cached apart).
    modules : mapping
        ``compute_features``, ``mean_var_norm`` and ``embedding_model``;
        put in eval mode here.
    cache_folder : str or None
        Where the features are kept (None: computed every time).
    settings : dict
        The feature settings for :func:`model_key`.
    data_root : str, optional
        What ``$data_root`` stands for.
    sample_rate : int
        The model's rate.
    batch_size : int
        Utterances per forward pass. 1 (the default) gives each utterance
        the features it has alone, as SpeechBrain's ``classify_file``
        computes them; in a padded batch the convolutions near the end of
        a shorter utterance see the padding.
    device : str or torch.device
        Where the model runs.
    progress : bool
        Show a tqdm progress bar over the utterances computed.
    key : str, optional
        :func:`model_key` of ``modules`` and ``settings``, if known.

    Returns
    -------
    torch.Tensor
        float32 ``[len(rows), F]`` on the CPU, in the rows' order.

    Raises
    ------
    emotion_invariant.data.audio.AudioError
        For a row whose audio cannot be read (named).
    """
    key = key or model_key(modules, settings)
    cache = FeatureCache(cache_folder, key) if cache_folder else None
    found = [None] * len(rows)
    if cache is not None:
        found = [cache.get(row, data_root) for row in rows]
    todo = [i for i in range(len(rows)) if found[i] is None]
    if todo:
        for module in modules.values():
            module.eval()
        todo.sort(key=lambda i: -float(rows[i].get("duration") or 0))
        bar = tqdm(total=len(todo), desc="layer features", disable=not progress)
        with torch.no_grad(), bar:
            for start in range(0, len(todo), batch_size):
                batch = todo[start : start + batch_size]
                signals = [
                    read_audio(rows[i], data_root, sample_rate) for i in batch
                ]
                signals = [
                    signal
                    if row_speed(rows[i]) is None
                    else perturb_speed(signal, row_speed(rows[i]), sample_rate)
                    for i, signal in zip(batch, signals)
                ]
                wavs, lens = pad_batch(signals)
                out = layer_statistics(
                    modules, wavs.to(device), lens.to(device)
                ).cpu()
                for i, vector in zip(batch, out):
                    found[i] = vector
                    if cache is not None:
                        cache.put(rows[i], vector, data_root)
                bar.update(len(batch))
    return torch.stack(found) if found else torch.zeros(0, 0)
