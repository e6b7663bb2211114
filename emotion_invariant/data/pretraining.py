"""The data of cluster-guided contrastive pretraining.

After Ulgen, Du, Busso and Sisman (ICASSP 2024): the utterances to pretrain
on (any manifest, unlabelled rows welcome, no speaker of the emotion test
split), and a SpeechBrain dataset of anchors, each with a positive drawn by
:class:`emotion_invariant.data.cluster_sampler.ClusterPairSampler` as its
second view, batched by speakers
(:class:`emotion_invariant.data.speaker_batches.SpeakerBatchSampler`).
"""

import logging
import random

import speechbrain as sb
import torch

from emotion_invariant.corpora.audio_check import check_manifest_audio
from emotion_invariant.data.audio import random_segment, read_audio
from emotion_invariant.data.cluster_sampler import ClusterPairSampler
from emotion_invariant.data.folds import check_held_out
from emotion_invariant.data.manifest import ManifestError, read_manifest
from emotion_invariant.data.speaker_batches import SpeakerBatchSampler
from emotion_invariant.data.steps import training_steps

logger = logging.getLogger(__name__)


def pretraining_rows(hparams):
    """The rows of ``pretrain_annotation``, their audio checked.

    With ``skip_bad``, ``hparams["pretrain_annotation"]`` then points at
    the manifest without the unusable rows. Rows may have an empty ``emo``.
    Speakers of ``held_out_annotation`` (when set) are refused.

    Arguments
    ---------
    hparams : dict
        ``pretrain_annotation``, ``held_out_annotation``, ``data_folder``,
        ``min_duration`` and ``skip_bad``.

    Returns
    -------
    list of dict

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> from emotion_invariant.data.manifest import write_manifest
    >>> d = tempfile.mkdtemp()
    >>> wav = os.path.join(d, "a.wav")
    >>> soundfile.write(wav, numpy.ones(3200) / 4, 16000)
    >>> row = {"ID": "a0", "duration": 0.2, "wav": wav, "spk_id": "a"}
    >>> write_manifest([{**row, "emo": ""}], f"{d}/pre.csv")
    >>> write_manifest([{**row, "emo": "neu"}], f"{d}/test.csv")
    >>> hparams = {"pretrain_annotation": f"{d}/pre.csv",
    ...            "held_out_annotation": None, "data_folder": d,
    ...            "min_duration": 0.1, "skip_bad": False}
    >>> [row["ID"] for row in pretraining_rows(hparams)]
    ['a0']
    >>> hparams["held_out_annotation"] = f"{d}/test.csv"
    >>> pretraining_rows(hparams)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: ...pre.csv: speaker(s) a \
of the held-out ...
    """
    source = hparams["pretrain_annotation"] = check_manifest_audio(
        hparams["pretrain_annotation"],
        hparams["data_folder"],
        hparams["min_duration"],
        hparams["skip_bad"],
        cache=hparams.get("audio_cache"),
    )
    rows = read_manifest(source, allow_empty_emo=True)
    held = hparams["held_out_annotation"]
    if held:
        check_held_out(
            rows, read_manifest(held, allow_empty_emo=True), source, held
        )
    return rows


def pair_dataset(hparams, rows, clusters):
    """The anchor dataset of the pretraining, and its samplers.

    Each item is an anchor (``sig``), its positive (``pos_id``,
    ``pos_sig``), the label of the loss (``label_encoded``: the cluster,
    or the speaker with ``positives: random_same_speaker``) and the
    speaker (``spk_encoded``). Crops and positives are drawn from (seed,
    epoch, utterance), so a resumed run draws as an unbroken one. Sets
    ``hparams`` ``batch_sampler`` (speakers x anchors per batch),
    ``pair_sampler``, ``contrast_all`` (negatives from every speaker),
    ``pretrain_speakers`` and ``steps_per_epoch``.

    Arguments
    ---------
    hparams : dict
        The pretraining hyperparameters: ``data_folder``, ``seed``,
        ``sample_rate``, ``max_train_len``, ``epoch_counter``,
        ``positives``, ``cross_speaker_negatives``, ``multitask``,
        ``anchors_per_speaker``, ``speakers_per_batch`` and
        ``pretrain_annotation``.
    rows : list of dict
        The pretraining rows (:func:`pretraining_rows`).
    clusters : list of str
        Each row's cluster.

    Returns
    -------
    speechbrain.dataio.dataset.DynamicItemDataset

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> from speechbrain.utils.epoch_loop import EpochCounter
    >>> d = tempfile.mkdtemp()
    >>> rows = []
    >>> for spk in "ab":
    ...     for i in range(4):
    ...         wav = os.path.join(d, f"{spk}{i}.wav")
    ...         soundfile.write(wav, numpy.zeros(3200), 16000)
    ...         rows.append({"ID": f"{spk}{i}", "duration": 0.2,
    ...                      "wav": wav, "spk_id": spk, "emo": ""})
    >>> clusters = [f"{row['spk_id']}:{i % 2}" for i, row in enumerate(rows)]
    >>> hparams = {
    ...     "data_folder": d, "seed": 1, "sample_rate": 16000,
    ...     "max_train_len": 0.1, "epoch_counter": EpochCounter(1),
    ...     "positives": "cluster", "cross_speaker_negatives": False,
    ...     "multitask": "none", "anchors_per_speaker": 2,
    ...     "speakers_per_batch": 2, "pretrain_annotation": "pre.csv"}
    >>> data = pair_dataset(hparams, rows, clusters)
    >>> item = data[0]
    >>> item["pos_id"], item["label_encoded"], item["sig"].shape
    ('a2', tensor([0]), torch.Size([1600]))
    >>> hparams["pretrain_speakers"], hparams["steps_per_epoch"]
    (['a', 'b'], 2)
    """
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
        return random_segment(wave, crop, rng)

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides(
        "sig", "pos_id", "pos_sig", "label_encoded", "spk_encoded"
    )
    def pair_pipeline(uid):
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
    source = hparams["pretrain_annotation"]
    hparams["batch_sampler"] = batches
    hparams["pair_sampler"] = pairs
    hparams["contrast_all"] = pairs.cross_speaker_negatives
    hparams["pretrain_speakers"] = sorted(spk_index)
    _, hparams["steps_per_epoch"] = training_steps(
        len(rows), {"batch_sampler": batches}, source
    )
    if hparams["multitask"] != "none" and len(spk_index) < 2:
        raise ManifestError(
            f"{source}: multitask: {hparams['multitask']} needs at least 2 "
            f"speakers, got {len(spk_index)}"
        )
    logger.info(
        "pretraining on %d utterances (%d unlabelled) of %d speakers, %d %s",
        len(rows),
        sum(not row["emo"] for row in rows),
        len(spk_index),
        len(pairs.label_names),
        "clusters" if hparams["positives"] == "cluster" else "speakers",
    )
    return data
