"""One frozen-layer emotion run: its features, grid and dev-only choice.

With ``frozen_layers: true`` the emotion recipe keeps the encoder as it
was loaded (``pretrained_encoder``) and trains
:class:`~emotion_invariant.emotion.layer_head.LayerHead` on cached layer
features (:mod:`~emotion_invariant.emotion.layer_features`), normalised
per speaker (``speaker_norm``). :class:`LayerData` holds a run's features
in memory, so an epoch reads tensors, not audio. A small grid of settings
(``select_grid``) is trained in turn and the best dev UA chooses one
(:func:`select_on_dev`); the test speakers' features are computed only
when the chosen model is evaluated, so nothing of theirs can sway the
choice.
"""

import itertools
import json
import os
import shutil
from functools import cached_property, partial

import speechbrain as sb
import torch
from speechbrain.dataio.dataset import DynamicItemDataset
from speechbrain.nnet.schedulers import LinearScheduler
from speechbrain.utils.epoch_loop import EpochCounter

from emotion_invariant.atomic import atomic_open
from emotion_invariant.checkpoints import AtomicCheckpointer
from emotion_invariant.data.labels import class_weights, labelled_splits
from emotion_invariant.data.manifest import ManifestError, read_manifest
from emotion_invariant.emotion.layer_features import (
    LAYERS,
    layer_dims,
    layer_features,
    model_key,
)
from emotion_invariant.emotion.layer_head import HEAD_TYPES
from emotion_invariant.emotion.layer_model import (
    SELECTION_FILE,
    load_frozen_encoder,
    point_name,
    read_selection_file,
)
from emotion_invariant.emotion.report import check_selection, checkpoint_rank
from emotion_invariant.emotion.speaker_norm import MODES, SpeakerStatistics
from emotion_invariant.losses.adversarial import EmbeddingMemory
from emotion_invariant.models.pretrained import warn_other_norm

#: The settings a grid can vary, and the key each one sets.
GRID_KEYS = ("head_type", "layer_set", "lr")
#: Where the test speakers' statistics come from.
STATS_SOURCES = ("transductive", "enrolment")


def check_layer_settings(hparams):
    """Refuse frozen-layer settings the run cannot use, before it starts.

    Example
    -------
    >>> hparams = {"frozen_layers": True, "norm_type": "sentence",
    ...            "layer_sets": {"all": list(LAYERS)}, "layer_set": "all",
    ...            "head_type": "mlp", "lr": 0.001, "speaker_norm": "none",
    ...            "speaker_stats": "transductive", "enrol_manifest": None,
    ...            "select_grid": {"layer_set": ["all", "top"]}}
    >>> check_layer_settings(hparams)
    Traceback (most recent call last):
    ...
    ValueError: select_grid: layer_set 'top' is not a key of layer_sets \
(all)
    """
    if not hparams.get("frozen_layers"):
        unused = [
            key
            for key in (
                "speaker_means_weight",
                "train_speed_perturb",
                "test_speed_perturb",
            )
            if hparams.get(key)
        ]
        if unused:
            raise ValueError(
                f"{', '.join(unused)}: only the frozen-layer head "
                "(frozen_layers: true) uses this; leave it unset here"
            )
        return
    if hparams["norm_type"] == "global" and not hparams["pretrained_encoder"]:
        raise ValueError(
            "frozen_layers: norm_type global normalises the fbank with "
            "statistics learnt while training the encoder, and a random "
            "encoder (pretrained_encoder: null) has none; use --norm_type "
            "sentence (the published ECAPA's)"
        )
    sets = hparams["layer_sets"]
    if not isinstance(sets, dict) or not sets:
        raise ValueError("layer_sets: expected a mapping name -> layers")
    for name, layers in sets.items():
        if (
            not isinstance(layers, (list, tuple))
            or not layers
            or any(layer not in LAYERS for layer in layers)
        ):
            raise ValueError(
                f"layer_sets: {name}: {layers!r} must list one or more of "
                f"{', '.join(LAYERS)}"
            )
    for point in grid_points(hparams):
        if point["layer_set"] not in sets:
            raise ValueError(
                f"select_grid: layer_set {point['layer_set']!r} is not a key "
                f"of layer_sets ({', '.join(sets)})"
            )
        if point["head_type"] not in HEAD_TYPES:
            raise ValueError(
                f"select_grid: head_type {point['head_type']!r} is not valid;"
                f" expected one of: {', '.join(HEAD_TYPES)}"
            )
        lr = point["lr"]
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or lr <= 0:
            raise ValueError(
                f"select_grid: lr {lr!r} is not valid; expected a number > 0"
            )
    if hparams["speaker_norm"] not in MODES:
        raise ValueError(f"speaker_norm: {hparams['speaker_norm']!r}")
    if hparams["speaker_stats"] == "enrolment":
        if hparams["speaker_norm"] != "none" and not hparams["enrol_manifest"]:
            raise ValueError(
                "speaker_stats: enrolment takes the test speakers' statistics "
                "from enrol_manifest, which is not set"
            )
    for key in ("train_speed_perturb", "test_speed_perturb"):
        speeds = hparams.get(key) or []
        if (
            not isinstance(speeds, (list, tuple))
            or any(
                isinstance(v, bool)
                or not isinstance(v, (int, float))
                or not 0.5 <= v <= 2.0
                or v == 1.0
                for v in speeds
            )
            or len(set(speeds)) != len(speeds)
        ):
            raise ValueError(
                f"{key}: {speeds!r} is not valid; expected a list of distinct "
                "speed factors in [0.5, 2], other than 1 (e.g. [0.9, 1.1])"
            )
    weight = hparams.get("speaker_means_weight", 0.0)
    if (
        isinstance(weight, bool)
        or not isinstance(weight, (int, float))
        or not (weight >= 0)
    ):
        raise ValueError(
            f"speaker_means_weight: {weight!r} is not valid; expected a "
            "number >= 0"
        )
    c = hparams.get("layers_lr_c")
    if c is not None and (
        isinstance(c, bool) or not isinstance(c, (int, float)) or c <= 0
    ):
        raise ValueError(
            f"layers_lr_c: {c!r} is not valid; expected null or a number > 0"
        )
    enrol = hparams["enrol_manifest"]
    if enrol and not os.path.isfile(enrol):
        raise ValueError(f"enrol_manifest: {enrol}: no such file")


def check_emotion_settings(hparams):
    """Every emotion run's settings checks, before anything is written
    (``start_run``'s ``check``): the selection epoch and, with
    ``frozen_layers``, :func:`check_layer_settings`."""
    check_selection(hparams)
    check_layer_settings(hparams)


def grid_points(hparams):
    """The settings the run trains, in order: ``select_grid``'s product
    (``preset_grid``'s when it is empty), each key it leaves out at its
    single value.

    Example
    -------
    >>> h = {"head_type": "mlp", "layer_set": "all", "lr": 0.001,
    ...      "select_grid": {"head_type": ["linear", "mlp"]}}
    >>> [p["head_type"] for p in grid_points(h)]
    ['linear', 'mlp']
    >>> grid_points({**h, "select_grid": None})
    [{'head_type': 'mlp', 'layer_set': 'all', 'lr': 0.001}]
    >>> grid_points({**h, "select_grid": {"epochs": [3]}})
    Traceback (most recent call last):
    ...
    ValueError: select_grid: 'epochs' is not a grid key; expected some of: \
head_type, layer_set, lr (epochs: the best dev epoch of each point)
    """
    # A grid given on the command line replaces the preset's whole: an
    # override of one mapping would be merged into it, key by key.
    grid = hparams.get("select_grid") or hparams.get("preset_grid") or {}
    if not isinstance(grid, dict):
        raise ValueError(
            f"select_grid: {grid!r} is not valid; expected null or a mapping "
            "of head_type, layer_set and lr to lists of values"
        )
    for key, values in grid.items():
        if key not in GRID_KEYS:
            raise ValueError(
                f"select_grid: {key!r} is not a grid key; expected some of: "
                f"{', '.join(GRID_KEYS)} (epochs: the best dev epoch of each "
                "point)"
            )
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"select_grid: {key}: expected a non-empty list, got {values!r}"
            )
    axes = [grid.get(key, [hparams[key]]) for key in GRID_KEYS]
    return [dict(zip(GRID_KEYS, values)) for values in itertools.product(*axes)]


def speed_copies(rows, speeds):
    """Speed-perturbed copies of ``rows``, one per row and factor.

    Each copy plays its audio ``speed`` times faster (:func:`~emotion_
    invariant.emotion.layer_features.perturb_speed`), has its own ``ID``
    and is a speaker of its own (``spk_id`` ``<speaker>@<speed>``: tempo
    and pitch change the voice) whose ``speaker_of`` is the original.

    Example
    -------
    >>> rows = [{"ID": "u1", "spk_id": "s1", "emo": "ang"}]
    >>> [(r["ID"], r["spk_id"], r["speaker_of"], r["speed"])
    ...  for r in speed_copies(rows, [0.9, 1.1])]
    [('u1@0.9', 's1@0.9', 's1', 0.9), ('u1@1.1', 's1@1.1', 's1', 1.1)]
    """
    return [
        {
            **row,
            "ID": f"{row['ID']}@{speed}",
            "spk_id": f"{row['spk_id']}@{speed}",
            "speaker_of": row["spk_id"],
            "speed": float(speed),
        }
        for speed in speeds
        for row in rows
    ]


class LayerData:
    """A run's labels and normalised features, held in memory.

    Loads ``pretrained_encoder`` into the run's encoder, and computes (or
    reads from ``feature_cache``) the layer features of the training and
    dev utterances; the test speakers' (and the enrolment utterances')
    only when :meth:`test` is called. Each speaker's features are
    normalised with its own statistics (``speaker_norm``): training and
    dev speakers over their own utterances; test speakers over the
    enrolment utterances or over their scored test utterances
    (``speaker_stats``); a speaker without two of them with the training
    speakers' average (see :class:`SpeakerStatistics`).

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters of one run; ``emotion_labels``,
        ``train_speakers`` and ``class_weights`` are set here.
    device : str
        Where the encoder runs.
    progress : bool
        Show the extraction's progress bar.
    """

    def __init__(self, hparams, device="cpu", progress=True):
        self.hparams = hparams
        self.device = device
        self.progress = progress
        sources, parts, labels, speakers = labelled_splits(hparams)
        self.sources, self.parts = sources, parts
        self.labels, self.speakers = labels, speakers
        hparams["emotion_labels"] = labels
        hparams["train_speakers"] = speakers
        hparams["class_weights"] = (
            class_weights(parts["train"], labels)
            if hparams["class_balanced"]
            else None
        )
        encoder = hparams["embedding_model"]
        if hparams["pretrained_encoder"]:
            used = load_frozen_encoder(
                hparams["pretrained_encoder"],
                encoder,
                hparams["mean_var_norm"],
                hparams["norm_type"],
            )
            warn_other_norm(used, hparams["norm_type"])
        self.modules = {
            name: hparams[name].to(device).eval()
            for name in ("compute_features", "mean_var_norm", "embedding_model")
        }
        self.dims = layer_dims(encoder)
        self.settings = {
            "sample_rate": hparams["sample_rate"],
            "n_mels": hparams["n_mels"],
            "norm_type": hparams["norm_type"],
        }
        self.key = model_key(self.modules, self.settings)
        # Speed-perturbed copies of the training utterances: more voices
        # to learn emotions over; each copy of a speaker is normalised on
        # its own statistics, and is that speaker for the adversary.
        self.speed_rows = speed_copies(
            parts["train"], hparams.get("train_speed_perturb") or []
        )
        roles = ("train", "dev") + (("train_speed",) if self.speed_rows else ())
        self.features = {role: self.compute(self.rows(role)) for role in roles}
        self.norm = SpeakerStatistics(hparams["speaker_norm"]).fit(
            self.features["train"],
            self.spk("train"),
            "training utterances",
        )
        self.normalised = {
            "train": self.norm.apply(self.features["train"], self.spk("train")),
        }
        what = {
            "dev": "dev utterances",
            "train_speed": "speed-perturbed training utterances",
        }
        for role in roles[1:]:
            norm = SpeakerStatistics(
                hparams["speaker_norm"], self.norm.population
            ).fit(self.features[role], self.spk(role), what[role])
            self.normalised[role] = norm.apply(
                self.features[role], self.spk(role)
            )

    def compute(self, rows):
        """Layer features ``[N, F]`` of ``rows`` (cached)."""
        h = self.hparams
        return layer_features(
            rows,
            self.modules,
            h["feature_cache"],
            self.settings,
            data_root=h["data_folder"],
            sample_rate=h["sample_rate"],
            batch_size=h["feature_batch_size"],
            device=self.device,
            progress=self.progress,
            key=self.key,
        )

    def rows(self, role):
        """The manifest rows of a role (``train_speed``: the
        speed-perturbed copies of the training rows)."""
        return self.speed_rows if role == "train_speed" else self.parts[role]

    def training_size(self):
        """Training rows an epoch goes through, speed copies included."""
        return len(self.parts["train"]) + len(self.speed_rows)

    def spk(self, role):
        """The speaker of each row of a role."""
        return [row["spk_id"] for row in self.rows(role)]

    def emo(self, role):
        """The emotion index of each row of a role."""
        return [self.labels.index(row["emo"]) for row in self.rows(role)]

    @cached_property
    def _speaker_positions(self):
        return {spk: i for i, spk in enumerate(self.speakers)}

    def speaker_index(self, row):
        """A row's training-speaker index (a speed copy's: its
        original's), -1 for a speaker not in training."""
        speaker = row.get("speaker_of", row["spk_id"])
        return self._speaker_positions.get(speaker, -1)

    def dataset(self, role):
        """A ``DynamicItemDataset`` of a role's normalised features, with
        output keys ``id, feats, emo_encoded, spk_encoded`` (-1 for a
        speaker not in training); ``train`` also holds the speed-perturbed
        copies (``train_speed_perturb``)."""
        roles = [role] + (
            ["train_speed"] if role == "train" and self.speed_rows else []
        )
        data = {
            row["ID"]: {
                "feats": feats,
                "emo_encoded": torch.LongTensor([emo]),
                "spk_encoded": torch.LongTensor([self.speaker_index(row)]),
            }
            for part in roles
            for row, feats, emo in zip(
                self.rows(part), self.normalised[part], self.emo(part)
            )
        }
        return DynamicItemDataset(
            data, output_keys=["id", "feats", "emo_encoded", "spk_encoded"]
        )

    def speaker_set(self):
        """Every training row's normalised features ``[N, F]`` (speed
        copies included) and the index of its speaker among
        ``self.speakers`` ``[N]`` (a copy's: its original's), for the
        speaker mean matching term (``speaker_means_weight``)."""
        if len(self.speakers) < 2:
            raise ValueError(
                f"speaker_means_weight: matching the speakers' means needs at "
                f"least 2 training speakers, {self.hparams['train_annotation']}"
                f" has {len(self.speakers)}"
            )
        roles = ["train"] + (["train_speed"] if self.speed_rows else [])
        speakers = [
            self.speaker_index(row) for role in roles for row in self.rows(role)
        ]
        features = torch.cat([self.normalised[role] for role in roles])
        return features, torch.tensor(speakers)

    def test(self):
        """The scored test rows and their normalised features.

        Rows of ``enrol_manifest`` are never scored; with ``speaker_stats:
        enrolment`` they give each test speaker its statistics, otherwise
        the scored rows of each speaker do (transductive). With
        ``test_speed_perturb``, each scored row also has a copy per speed
        factor (:func:`speed_copies`), normalised alike: a copy of a
        speaker on the same copies of its enrolment (or scored) rows.

        Returns
        -------
        dict
            ``rows``, ``features`` (raw), ``normalised``, ``stats`` (the
            source: ``transductive``, ``enrolment`` or ``none``),
            ``transductive`` (the features normalised with the scored
            rows' own statistics, whatever the source; None for
            ``none``),
            ``enrol_rows`` and ``enrol_features`` (those that gave the
            statistics), ``excluded`` (test rows left out as
            enrolment) and ``copies``: per ``test_speed_perturb`` factor,
            ``{"speed", "normalised", "transductive"}`` aligned with
            ``rows``.
        """
        h = self.hparams
        enrol_rows = []
        if h["enrol_manifest"]:
            enrol_rows = read_manifest(
                h["enrol_manifest"], allow_empty_emo=True
            )
        enrol_ids = {row["ID"] for row in enrol_rows}
        rows = [row for row in self.parts["test"] if row["ID"] not in enrol_ids]
        if not rows:
            raise ManifestError(
                f"{h['enrol_manifest']}: holds every test utterance of "
                f"{self.sources['test']}, so none is left to score"
            )
        source = h["speaker_stats"]
        if h["speaker_norm"] == "none":
            source = "none"
        elif source == "enrolment":
            test_speakers = {row["spk_id"] for row in rows}
            enrol_rows = [r for r in enrol_rows if r["spk_id"] in test_speakers]
            missing = sorted(test_speakers - {r["spk_id"] for r in enrol_rows})
            if missing:
                raise ManifestError(
                    f"{h['enrol_manifest']}: no enrolment utterance of test "
                    f"speaker(s) {', '.join(repr(s) for s in missing)}"
                )
        if source != "enrolment":
            enrol_rows = []
        side = self._test_side(rows, enrol_rows, source)
        copies = []
        for speed in h.get("test_speed_perturb") or []:
            copy = self._test_side(
                speed_copies(rows, [speed]),
                speed_copies(enrol_rows, [speed]),
                source,
            )
            copies.append(
                {
                    "speed": float(speed),
                    "normalised": copy["normalised"],
                    "transductive": copy["transductive"],
                }
            )
        return {
            **side,
            "rows": rows,
            "stats": source,
            "enrol_rows": enrol_rows,
            "excluded": len(self.parts["test"]) - len(rows),
            "copies": copies,
        }

    def _test_side(self, rows, enrol_rows, source):
        """The features of scored ``rows``, normalised with the statistics
        of ``enrol_rows`` (``source`` enrolment) or of their own
        (transductive), and with their own (``transductive``)."""
        mode = self.hparams["speaker_norm"]
        features = self.compute(rows)
        speakers = [row["spk_id"] for row in rows]
        norm = SpeakerStatistics(mode, self.norm.population)
        enrol_features = None
        if source == "enrolment":
            enrol_features = self.compute(enrol_rows)
            norm.fit(
                enrol_features,
                [r["spk_id"] for r in enrol_rows],
                "enrolment utterances",
            )
        transductive = None
        if mode != "none":
            own = SpeakerStatistics(mode, self.norm.population).fit(
                features, speakers, "test utterances (transductive)"
            )
            transductive = own.apply(features, speakers)
            if source == "transductive":
                norm = own
        return {
            "features": features,
            "normalised": norm.apply(features, speakers),
            "transductive": transductive,
            "enrol_features": enrol_features,
        }


def point_run(hparams, data, point):
    """The hyperparameters of one grid point's training.

    A fresh head (standardised on the normalised training features) and
    speaker adversary, seeded alike for every point, with their own
    checkpoint folder (``save_folder/<point>``), epoch counter, learning
    rate and its annealing (``lr_final / lr`` of the yaml's).

    Returns
    -------
    dict
        ``hparams`` with ``point``, ``modules`` (``layer_head``,
        ``adversary``), ``opt_class``, ``lr_annealing``,
        ``epoch_counter``, ``checkpointer``, ``adversary``,
        ``adversary_memory`` and ``layers`` replaced.
    """
    sb.utils.seed_everything(hparams["seed"])
    layers = hparams["layer_sets"][point["layer_set"]]
    head = hparams["layer_head"](
        layer_dims=data.dims,
        layers=layers,
        n_classes=len(data.labels),
        head_type=point["head_type"],
    )
    head.pooling.set_standardisation(data.normalised["train"])
    if data.norm.population is not None:
        head.population_mean.copy_(data.norm.population[0])
        head.population_scale.copy_(data.norm.population[1])
    adversary = hparams["layer_adversary"](
        n_speakers=max(2, len(data.speakers))
    )
    memory = EmbeddingMemory(hparams["adv_memory"], hparams["layer_dim"])
    counter = EpochCounter(hparams["number_of_epochs"])
    lr = point["lr"]
    checkpointer = AtomicCheckpointer(
        os.path.join(hparams["save_folder"], point_name(point)),
        recoverables={
            "layer_head": head,
            "adversary": adversary,
            "adversary_memory": memory,
            "counter": counter,
        },
    )
    return {
        **hparams,
        "point": point,
        "layers": layers,
        "modules": {"layer_head": head, "adversary": adversary},
        "adversary": adversary,
        "adversary_memory": memory,
        "epoch_counter": counter,
        "checkpointer": checkpointer,
        "opt_class": partial(hparams["opt_class"], lr=lr),
        "lr_annealing": LinearScheduler(
            lr, lr * hparams["lr_final"] / hparams["lr"], counter.limit
        ),
    }


def best_checkpoint(checkpointer, select_from_epoch):
    """The checkpoint a point is judged and evaluated by (see
    :func:`~emotion_invariant.emotion.report.checkpoint_rank`), or None."""
    return checkpointer.find_checkpoint(
        importance_key=checkpoint_rank(select_from_epoch),
        ckpt_predicate=lambda ckpt: "UA" in ckpt.meta,
    )


def select_on_dev(points, train_point, select_from_epoch=1):
    """Train every grid point; choose the best by dev UA alone.

    Arguments
    ---------
    points : list of dict
        :func:`grid_points`.
    train_point : callable
        ``train_point(point) -> run`` trains one point on the training
        speakers and returns its :func:`point_run` dict, whose checkpoints
        hold the dev UA of each epoch.
    select_from_epoch : int
        The first epoch that can be chosen.

    Returns
    -------
    tuple
        ``(run, table)``: the chosen point's run, and one row per point
        (``point``, ``dev_ua``, ``epoch``, ``chosen``). Ties go to the
        earlier point.
    """
    rank = checkpoint_rank(select_from_epoch)
    best = best_key = None
    table = []
    for point in points:
        run = train_point(point)
        ckpt = best_checkpoint(run["checkpointer"], select_from_epoch)
        if ckpt is None:
            raise ValueError(
                f"{run['checkpointer'].checkpoints_dir}: no end-of-epoch "
                f"checkpoint of grid point {point_name(point)}"
            )
        key = rank(ckpt)
        table.append(
            {
                "point": point,
                "name": point_name(point),
                "dev_ua": ckpt.meta["UA"],
                "epoch": ckpt.meta.get("epoch"),
            }
        )
        if best is None or key > best_key:
            best, best_key = run, key
    for row in table:
        row["chosen"] = row["point"] == best["point"]
    return best, table


def prune_grid(hparams, run, table):
    """Delete the checkpoints that evaluation and export never read.

    Once the choice is made (and written), the other grid points' folders
    go, and the chosen point keeps its best checkpoint only: a grid of 8
    points would otherwise keep 16 checkpoints of every fold.

    Arguments
    ---------
    hparams : dict
        The run's hyperparameters (``save_folder``, ``select_from_epoch``).
    run : dict
        The chosen point's :func:`point_run`.
    table : list of dict
        The grid's rows (:func:`select_on_dev`).
    """
    for row in table:
        folder = os.path.join(hparams["save_folder"], row["name"])
        if not row["chosen"] and os.path.isdir(folder):
            shutil.rmtree(folder)
    run["checkpointer"].delete_checkpoints(
        num_to_keep=1,
        importance_keys=[checkpoint_rank(hparams["select_from_epoch"])],
    )


def write_selection(hparams, table, data):
    """Write the grid, the choice and the encoder the features came from
    (:func:`model_key`, checked again at export) to
    ``run_folder/selection.json``."""
    path = os.path.join(hparams["run_folder"], SELECTION_FILE)
    grid = {
        key: sorted({str(row["point"][key]) for row in table})
        for key in GRID_KEYS
    }
    selection = {
        "grid": grid,
        "points": table,
        "feature_model": data.key,
        "feature_settings": data.settings,
    }
    with atomic_open(path) as f:
        json.dump(selection, f, indent=1)
    return path


def read_selection(hparams):
    """The chosen point of a trained run, and its grid's rows."""
    selection, point, _ = read_selection_file(hparams["run_folder"])
    return point, selection["points"]
