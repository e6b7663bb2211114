#!/usr/bin/env python3
"""Recipe: cluster-guided contrastive pretraining of the emotion encoder.

The pretraining of "Revealing Emotional Clusters in Speaker Embeddings: A
Contrastive Learning Strategy for Speech Emotion Recognition" (Ulgen, Du,
Busso and Sisman, ICASSP 2024). Each speaker's utterances are clustered in
a speaker embedding space (``emotion_invariant.clustering``); the clusters
stand in for emotion labels, so unlabelled speech can be used. An anchor's
positive is another utterance of its speaker and cluster
(``emotion_invariant.data.cluster_sampler``), its negatives are its
speaker's utterances of other clusters in the batch (and, if asked, every
other speaker's), and the loss is the supervised contrastive loss over the
two views (anchor, positive) with the cluster as the label. The switches
are in yaml:

- ``positives: random_same_speaker``: the ablation baseline, any other
  utterance of the speaker is the positive and the speaker is the label;
- ``multitask: speaker`` adds speaker classification on the embedding,
  ``multitask: adversary`` the same classifier behind gradient reversal.

The encoder is the emotion recognition recipe's, so the pretrained
``encoder.ckpt`` (or the checkpoint folder) initialises its fine-tuning,
where :func:`label_budget` keeps a fraction of the emotion labels.

To run::

    python recipes/emotion_recognition/pretrain.py \\
        hparams/emotion_recognition/pretrain_cluster_contrastive.yaml \\
        --data_folder results/demo/corpus --output_folder results/pretrain/c \\
        --speaker_model results/sv/baseline/save

``--debug`` runs two batches of two epochs; every yaml key can be
overridden on the command line.
"""

import csv
import logging
import os
import random
import sys
import time
from collections import Counter

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.distributed import infer_device, run_on_main

from emotion_invariant.cluster import cluster
from emotion_invariant.clustering import ClusteringError
from emotion_invariant.data.audio_check import check_manifest_audio
from emotion_invariant.data.cluster_sampler import MODES, ClusterPairSampler
from emotion_invariant.data.manifest import ManifestError, read_manifest
from emotion_invariant.data.prepare import prepare
from emotion_invariant.data.speaker_batches import SpeakerBatchSampler
from emotion_invariant.data.steps import training_steps
from emotion_invariant.distributed import DistributedBrain
from emotion_invariant.hparams import load_hparams
from emotion_invariant.multiview import make_views, to_views
from emotion_invariant.pretrained import load_pretrained_ecapa
from emotion_invariant.scoring.extract import read_audio
from emotion_invariant.utils import atomic_path

logger = logging.getLogger(__name__)

MULTITASK = ("none", "speaker", "adversary")
SPEAKER_MODEL_SIZES = (
    "n_mels",
    "channels",
    "attention_channels",
    "se_channels",
    "lin_neurons",
)
ENCODER_FILE = "encoder.ckpt"


class PretrainError(ValueError):
    """Settings, clusters or data the pretraining cannot use."""


def read_clusters(path, rows):
    """Each row's cluster, from a ``clusters.csv``.

    The file needs ``ID`` and ``cluster`` columns (``spk_id``, when present,
    must agree with the manifest); it may list more utterances than the
    rows. Clusters are per speaker, so the returned ids are qualified by
    the speaker and unique across speakers even when the file numbers each
    speaker's clusters from 0.

    Arguments
    ---------
    path : str
        ``clusters.csv``, as written by ``python -m emotion_invariant.cluster``.
    rows : list of dict
        Manifest rows (``ID``, ``spk_id``).

    Returns
    -------
    list of str
        ``"<spk_id>/<cluster>"`` per row, in row order.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "clusters.csv")
    >>> _ = open(path, "w").write("ID,cluster\\nu1,0\\nu2,1\\nu3,0\\n")
    >>> read_clusters(path, [{"ID": "u3", "spk_id": "b"},
    ...                      {"ID": "u1", "spk_id": "a"}])
    ['b/0', 'a/0']
    >>> read_clusters(path, [{"ID": "u9", "spk_id": "a"}])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.clustering.ClusteringError: .../clusters.csv: no \
cluster for 1 of 1 manifest row(s): 'u9'
    """
    if not os.path.isfile(path):
        raise ClusteringError(f"clusters file not found: {path}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in ("ID", "cluster") if c not in header]
        if missing:
            raise ClusteringError(
                f"{path}: missing column(s) {', '.join(missing)} in the header"
                f" (found: {','.join(header) or 'nothing'})"
            )
        found = {}
        for line, record in enumerate(reader, start=2):
            uid, label = record.get("ID"), record.get("cluster")
            if not uid or not label:
                raise ClusteringError(
                    f"{path} line {line}: empty ID or cluster"
                )
            if uid in found:
                raise ClusteringError(
                    f"{path} line {line} (ID {uid}): duplicate ID, first on "
                    f"line {found[uid][2]}"
                )
            found[uid] = (record.get("spk_id"), label, line)
    absent = [row["ID"] for row in rows if row["ID"] not in found]
    if absent:
        shown = ", ".join(repr(uid) for uid in absent[:10])
        more = f" (+{len(absent) - 10} more)" if len(absent) > 10 else ""
        raise ClusteringError(
            f"{path}: no cluster for {len(absent)} of {len(rows)} manifest "
            f"row(s): {shown}{more}"
        )
    ids = []
    for row in rows:
        spk, label, line = found[row["ID"]]
        if spk is not None and spk != row["spk_id"]:
            raise ClusteringError(
                f"{path} line {line} (ID {row['ID']}): speaker {spk!r}, but "
                f"the manifest says {row['spk_id']!r}"
            )
        ids.append(f"{row['spk_id']}/{label}")
    return ids


def check_held_out(rows, held_out, source="<manifest>", held_source="<held>"):
    """Fail if a pretraining utterance is of a held-out speaker.

    Arguments
    ---------
    rows : list of dict
        Pretraining rows.
    held_out : list of dict
        Rows of the speakers emotion recognition is tested on.
    source, held_source : str
        The two manifests' names, for the error.

    Example
    -------
    >>> check_held_out([{"spk_id": "a"}], [{"spk_id": "b"}])
    >>> check_held_out([{"spk_id": "a"}], [{"spk_id": "a"}], "p.csv", "t.csv")
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: p.csv: speaker(s) a of \
the held-out t.csv are in pretraining: emotion results on them would not \
be speaker-independent
    """
    shared = sorted(
        {row["spk_id"] for row in rows} & {row["spk_id"] for row in held_out}
    )
    if shared:
        more = f" and {len(shared) - 5} more" if len(shared) > 5 else ""
        raise ManifestError(
            f"{source}: speaker(s) {' '.join(shared[:5])}{more} of the "
            f"held-out {held_source} are in pretraining: emotion results on "
            "them would not be speaker-independent"
        )


def speaker_supcon(loss_fn, features, labels, groups=None):
    """Supervised contrastive loss, optionally within each speaker only.

    With ``groups`` (the speaker of each row), ``loss_fn`` runs on each
    speaker's rows alone, so an anchor's negatives are its own speaker's
    other clusters, and the losses are averaged weighted by rows. A speaker
    whose rows all share one label has no negative and is left out; with
    none left the loss is a zero attached to the graph. A batch holds a few
    speakers, so the loop is short.

    Arguments
    ---------
    loss_fn : callable
        ``loss_fn(features, labels)``, e.g. ``SupConLoss``.
    features : torch.Tensor
        ``[B, V, D]`` views.
    labels : torch.Tensor
        ``[B]`` integer labels.
    groups : torch.Tensor, optional
        ``[B]`` speaker index; ``None`` contrasts every row with every row.

    Returns
    -------
    torch.Tensor
        Scalar loss.

    Example
    -------
    >>> from emotion_invariant.losses.supcon import SupConLoss
    >>> loss_fn = SupConLoss(margin=0.0)
    >>> x = torch.randn(4, 2, 8)
    >>> labels = torch.tensor([0, 1, 2, 2])
    >>> speakers = torch.tensor([0, 0, 1, 1])
    >>> torch.allclose(speaker_supcon(loss_fn, x, labels, speakers),
    ...                loss_fn(x[:2], labels[:2]))
    True
    """
    if groups is None:
        return loss_fn(features, labels)
    total, rows_used = features.sum() * 0.0, 0
    for group in torch.unique(groups):
        rows = groups == group
        if torch.unique(labels[rows]).numel() < 2:
            continue
        n = int(rows.sum())
        total = total + n * loss_fn(features[rows], labels[rows])
        rows_used += n
    return total / max(rows_used, 1)


def label_budget(rows, fraction, seed=0, source="<manifest>"):
    """Keep a fraction of each emotion's labelled rows, for fine-tuning.

    Each emotion keeps ``max(1, round(fraction * n))`` of its ``n`` rows,
    drawn with ``seed`` (per emotion, so one class's draw does not depend
    on another's); rows keep their order. Fine-tuning learns from the
    labels, so a row without one is an error naming it.

    Arguments
    ---------
    rows : list of dict
        Training rows, in the file order of ``source`` (for line numbers).
    fraction : float
        In ``(0, 1]``; 1 keeps every row.
    seed : int
        Seed of the draw.
    source : str
        The manifest's name, for errors.

    Returns
    -------
    list of dict

    Example
    -------
    >>> rows = [{"ID": str(i), "emo": "ang" if i < 10 else "sad"}
    ...         for i in range(14)]
    >>> kept = label_budget(rows, 0.3, seed=1)
    >>> sorted(Counter(row["emo"] for row in kept).items())
    [('ang', 3), ('sad', 1)]
    >>> label_budget([{"ID": "u1", "emo": ""}], 0.5, source="train.csv")
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: train.csv line 2 (ID u1): \
no emotion label; fine-tuning needs labelled rows (unlabelled speech is for \
pretraining)
    """
    if not 0 < fraction <= 1:
        raise PretrainError(f"label_fraction must be in (0, 1], got {fraction}")
    by_emotion = {}
    for index, row in enumerate(rows):
        if not row.get("emo"):
            raise ManifestError(
                f"{source} line {index + 2} (ID {row['ID']}): no emotion "
                "label; fine-tuning needs labelled rows (unlabelled speech "
                "is for pretraining)"
            )
        by_emotion.setdefault(row["emo"], []).append(index)
    keep = set()
    for emo, indices in by_emotion.items():
        n = max(1, round(fraction * len(indices)))
        keep.update(random.Random(f"{seed}:{emo}").sample(indices, n))
    return [row for index, row in enumerate(rows) if index in keep]


def load_pretrained_encoder(path, embedding_model):
    """Initialise an encoder from pretraining, offline.

    Arguments
    ---------
    path : str
        An ``encoder.ckpt`` (a state dict), a pretraining output folder
        holding one, or a folder :func:`emotion_invariant.pretrained.\
load_pretrained_ecapa` reads (``embedding_model.ckpt``, or ``CKPT+*``
        checkpoints such as the pretraining ``save`` folder).
    embedding_model : torch.nn.Module
        The encoder, of the sizes it was pretrained with.

    Returns
    -------
    str
        The file or checkpoint folder loaded.

    Example
    -------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "encoder.ckpt")
    >>> torch.save(torch.nn.Linear(2, 2).state_dict(), path)
    >>> model = torch.nn.Linear(2, 2)
    >>> load_pretrained_encoder(path, model) == path
    True
    >>> torch.equal(model.weight, torch.load(path)["weight"])
    True
    """
    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, ENCODER_FILE)):
        path = os.path.join(path, ENCODER_FILE)
    if os.path.isfile(path):
        names = {"embedding_model": os.path.basename(path)}
        load_pretrained_ecapa(
            os.path.dirname(os.path.abspath(path)), embedding_model, names=names
        )
        return path
    return load_pretrained_ecapa(path, embedding_model)["path"]


class ClusterContrastiveBrain(DistributedBrain):
    """ECAPA-TDNN trained with SupCon on (anchor, positive) pairs."""

    def embed(self, wavs, lens):
        """Embeddings ``[B, D]`` of padded waveforms."""
        feats = self.modules.compute_features(wavs)
        feats = self.modules.mean_var_norm(feats, lens)
        return self.modules.embedding_model(feats, lens).squeeze(1)

    def compute_forward(self, batch, stage):
        """Embeddings of anchors then positives; speaker logits if asked."""
        batch = batch.to(self.device)
        wavs, lens, _, _ = make_views(
            *batch.sig, (), None, n_views=1, extra_views=[batch.pos_sig]
        )
        embeddings = self.embed(wavs, lens)
        spk_logits = None
        multitask = self.hparams.multitask
        if multitask != "none":
            if multitask == "adversary":
                self.lambda_ = self.hparams.grl_schedule(self.progress())
                self.hparams.speaker_head.set_lambda(self.lambda_)
            spk_logits = self.modules.speaker_head(
                embeddings, reverse=multitask == "adversary"
            )
        return embeddings, spk_logits

    def progress(self):
        """Fraction of training done, for the reversal schedule."""
        done = (self.epoch - 1) + (self.step - 1) / self.hparams.steps_per_epoch
        return min(1.0, max(0.0, done / self.hparams.number_of_epochs))

    def compute_objectives(self, predictions, batch, stage):
        """SupCon over the two views, plus the weighted speaker loss."""
        embeddings, spk_logits = predictions
        labels = batch.label_encoded.data.squeeze(1)
        spk = batch.spk_encoded.data.squeeze(1)
        groups = None if self.hparams.contrast_all else spk
        loss = speaker_supcon(
            self.hparams.supcon, to_views(embeddings, 2), labels, groups
        )
        self.stats["supcon"] += loss.item()
        if spk_logits is not None:
            targets = torch.cat([spk, spk])
            spk_loss = F.cross_entropy(spk_logits, targets)
            loss = loss + self.hparams.multitask_weight * spk_loss
            self.stats["spk_ce"] += spk_loss.item()
            correct = (spk_logits.argmax(-1) == targets).float().mean()
            self.stats["spk_acc"] += correct.item()
        self.stats["batches"] += 1
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Reset the statistics; draw this epoch's batches."""
        self.epoch = epoch or 1
        self.stats = Counter()
        self.stage_start = time.perf_counter()
        if stage == sb.Stage.TRAIN:
            self.hparams.batch_sampler.set_epoch(self.epoch)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Log, anneal the learning rate, keep the latest checkpoint."""
        batches = max(1, self.stats.pop("batches", 0))
        stats = {"loss": stage_loss}
        stats.update({k: v / batches for k, v in self.stats.items()})
        if self.hparams.multitask == "adversary":
            stats["lambda"] = round(getattr(self, "lambda_", 0.0), 4)
        stats["seconds"] = round(time.perf_counter() - self.stage_start)
        old_lr, new_lr = self.hparams.lr_annealing(epoch)
        sb.nnet.schedulers.update_learning_rate(self.optimizer, new_lr)
        self.hparams.train_logger.log_stats(
            stats_meta={"epoch": epoch, "lr": old_lr}, train_stats=stats
        )
        self.checkpointer.save_and_keep_only(meta={"loss": stage_loss})


def check_settings(hparams):
    """Fail early on switches the pretraining cannot combine.

    Arguments
    ---------
    hparams : dict
        The loaded hyperparameters.

    Example
    -------
    >>> settings = {"positives": "cluster", "multitask": "none",
    ...             "clusters_file": None, "speaker_model": None,
    ...             "speaker_model_sizes": {}, "anchors_per_speaker": 8,
    ...             "cross_speaker_negatives": False}
    >>> check_settings({**settings, "clusters_file": "clusters.csv"})
    >>> try:
    ...     check_settings(settings)
    ... except PretrainError as err:
    ...     print(err)  # doctest: +ELLIPSIS
    positives: cluster needs clusters: set clusters_file (a clusters.csv) ...
    """
    if hparams["positives"] not in MODES:
        raise PretrainError(
            f"positives must be one of {', '.join(MODES)}, got "
            f"{hparams['positives']!r}"
        )
    if hparams["multitask"] not in MULTITASK:
        raise PretrainError(
            f"multitask must be one of {', '.join(MULTITASK)}, got "
            f"{hparams['multitask']!r}"
        )
    given = [k for k in ("clusters_file", "speaker_model") if hparams[k]]
    if len(given) == 2:
        raise PretrainError(
            "give clusters_file or speaker_model, not both: the clusters "
            "would be ambiguous"
        )
    if hparams["positives"] == "cluster" and not given:
        raise PretrainError(
            "positives: cluster needs clusters: set clusters_file (a "
            "clusters.csv) or speaker_model (a local ECAPA folder)"
        )
    unknown = set(hparams["speaker_model_sizes"]) - set(SPEAKER_MODEL_SIZES)
    if unknown:
        raise PretrainError(
            f"speaker_model_sizes: unknown key(s) {', '.join(sorted(unknown))}"
            f"; expected {', '.join(SPEAKER_MODEL_SIZES)}"
        )
    within = (
        hparams["positives"] == "cluster"
        and not hparams["cross_speaker_negatives"]
    )
    if within and hparams["anchors_per_speaker"] < 2:
        raise PretrainError(
            "anchors_per_speaker must be >= 2 when negatives come from the "
            "anchor's own speaker only (cross_speaker_negatives: false)"
        )


def prepare_data(hparams):
    """Manifests and splits of the corpus (demo corpus or real)."""
    prepare(
        hparams["corpus"], hparams["data_folder"], hparams["manifest_folder"]
    )


def pretraining_clusters(hparams, rows, device):
    """Each row's cluster: read, computed from ``speaker_model``, or none.

    With ``speaker_model`` the rows are embedded and clustered per speaker
    (:func:`emotion_invariant.cluster.cluster`, on the main process), and
    ``clusters.csv``, its report and a plot land in ``cluster_folder``.
    Without clusters (``positives: random_same_speaker``) each speaker is
    one cluster.
    """
    path = hparams["clusters_file"]
    if hparams["speaker_model"]:
        run_on_main(
            cluster,
            kwargs={
                "manifest": hparams["pretrain_annotation"],
                "out": hparams["cluster_folder"],
                "model": hparams["speaker_model"],
                "k": hparams["cluster_k"],
                "k_range": tuple(hparams["cluster_k_range"]),
                "seed": hparams["cluster_seed"],
                "batch_size": hparams["eval_batch_size"],
                "device": device,
                "data_root": hparams["data_folder"],
                **hparams["speaker_model_sizes"],
            },
        )
        path = os.path.join(hparams["cluster_folder"], "clusters.csv")
    if not path:
        return [row["spk_id"] for row in rows]
    return read_clusters(path, rows)


def dataio_prep(hparams, rows, clusters):
    """The anchor dataset, its batch sampler and the pair sampler."""
    data_root = hparams["data_folder"]
    speakers = [row["spk_id"] for row in rows]
    pairs = ClusterPairSampler(
        clusters,
        speakers,
        seed=hparams["seed"],
        cross_speaker_negatives=hparams["cross_speaker_negatives"],
        mode=hparams["positives"],
    )
    spk_index = {spk: i for i, spk in enumerate(sorted(set(speakers)))}
    index_of = {row["ID"]: i for i, row in enumerate(rows)}
    crop = int(hparams["max_train_len"] * hparams["sample_rate"])
    seed = hparams["seed"]
    counter = hparams["epoch_counter"]

    def load(index, rng):
        wave = read_audio(rows[index], data_root, hparams["sample_rate"])
        if wave.numel() <= crop:
            return wave
        start = rng.randrange(wave.numel() - crop + 1)
        return wave[start : start + crop]

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides(
        "sig", "pos_id", "pos_sig", "label_encoded", "spk_encoded"
    )
    def pair_pipeline(uid):
        # Seeded by (seed, epoch, utterance): a resumed run draws the same
        # positives and crops as an unbroken one.
        rng = random.Random(f"{seed}:{counter.current}:{uid}")
        index = index_of[uid]
        yield load(index, rng)
        positive = pairs.positive(index, rng)
        yield rows[positive]["ID"]
        yield load(positive, rng)
        yield torch.LongTensor([int(pairs.labels[index])])
        yield torch.LongTensor([spk_index[speakers[index]]])

    data = sb.dataio.dataset.DynamicItemDataset(
        {row["ID"]: dict(row) for row in rows}
    )
    data.add_dynamic_item(pair_pipeline)
    data.set_output_keys(
        ["id", "sig", "pos_id", "pos_sig", "label_encoded", "spk_encoded"]
    )
    batches = SpeakerBatchSampler(
        speakers,
        hparams["anchors_per_speaker"],
        hparams["speakers_per_batch"],
        groups=clusters,
        seed=seed,
    )
    hparams["batch_sampler"] = batches
    hparams["pair_sampler"] = pairs
    hparams["contrast_all"] = pairs.cross_speaker_negatives
    hparams["pretrain_speakers"] = sorted(spk_index)
    _, hparams["steps_per_epoch"] = training_steps(
        len(rows), {"batch_sampler": batches}, hparams["pretrain_annotation"]
    )
    return data


def build(argv):
    """Parse arguments, prepare data and clusters, build the Brain.

    Arguments
    ---------
    argv : list of str
        ``hparams_file [--overrides]`` as on the command line.

    Returns
    -------
    tuple
        ``(brain, hparams, dataset)``.
    """
    hparams_file, run_opts, overrides = sb.parse_arguments(argv)
    hparams, base_file, overrides = load_hparams(hparams_file, overrides)
    check_settings(hparams)
    if not torch.distributed.is_initialized():
        sb.utils.distributed.ddp_init_group(run_opts)
    sb.create_experiment_directory(
        experiment_directory=hparams["output_folder"],
        hyperparams_to_save=base_file,
        overrides=overrides,
    )
    if not hparams["skip_prep"]:
        run_on_main(prepare_data, kwargs={"hparams": hparams})
    source = hparams["pretrain_annotation"] = check_manifest_audio(
        hparams["pretrain_annotation"],
        hparams["data_folder"],
        hparams["min_duration"],
        hparams["skip_bad"],
    )
    rows = read_manifest(source, allow_empty_emo=True)
    held = hparams["held_out_annotation"]
    if held:
        check_held_out(
            rows, read_manifest(held, allow_empty_emo=True), source, held
        )
    device = run_opts.get("device") or infer_device()
    clusters = pretraining_clusters(hparams, rows, device)
    data = dataio_prep(hparams, rows, clusters)
    n_speakers = len(hparams["pretrain_speakers"])
    if hparams["multitask"] != "none" and n_speakers < 2:
        raise ManifestError(
            f"{source}: multitask: {hparams['multitask']} needs at least 2 "
            f"speakers, got {n_speakers}"
        )
    head = hparams["speaker_head"].head
    head[-1] = torch.nn.Linear(head[-1].in_features, max(2, n_speakers))
    logger.info(
        "pretraining on %d utterances (%d unlabelled) of %d speakers, %d %s",
        len(rows),
        sum(not row["emo"] for row in rows),
        n_speakers,
        len(hparams["pair_sampler"].label_names),
        "clusters" if hparams["positives"] == "cluster" else "speakers",
    )
    brain = ClusterContrastiveBrain(
        modules=hparams["modules"],
        opt_class=hparams["opt_class"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    return brain, hparams, data


def export_encoder(hparams):
    """Write the encoder's state dict to ``encoder_file``, atomically."""
    with atomic_path(hparams["encoder_file"]) as tmp:
        torch.save(hparams["embedding_model"].state_dict(), tmp)


def main(argv=None):
    """Pretrain; returns the path of the pretrained encoder."""
    brain, hparams, data = build(list(argv or sys.argv[1:]))
    loader = {
        "batch_sampler": hparams["batch_sampler"],
        "num_workers": hparams["num_workers"],
    }
    brain.fit(hparams["epoch_counter"], data, train_loader_kwargs=loader)
    run_on_main(export_encoder, kwargs={"hparams": hparams})
    return hparams["encoder_file"]


if __name__ == "__main__":
    try:
        main()
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
