"""The speaker-verification recipe's datasets.

SpeechBrain ``DynamicItemDataset`` objects of the train and dev manifests.
A training item is a random crop of the utterance (the anchor) and its
second view: with probability ``copypaste_prob`` an emotion CopyPaste of
the anchor with a same-speaker, other-emotion partner
(:class:`~emotion_invariant.augment.copypaste.EmotionCopyPaste`), else a
copy of the anchor, augmented later on the batch as in SpeechBrain's
VoxCeleb recipe. Crops and views are seeded by (seed, epoch, utterance), so
a resumed run draws them as an unbroken one does. Dev items are whole
utterances, scored on the dev speakers' trials.
"""

import os
import random

import speechbrain as sb

from emotion_invariant.augment.copypaste import EmotionCopyPaste, random_crop
from emotion_invariant.data.audio import read_audio
from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.data.parallel import ParallelIndex, check_copypaste
from emotion_invariant.data.speaker_batches import speaker_batches
from emotion_invariant.data.steps import epoch_sampler
from emotion_invariant.data.trials import dev_trials
from emotion_invariant.data.trim import trim_silence


def audio_loader(data_root, sample_rate, trim_db=None):
    """``load(row)``: a manifest row's audio, silence trimmed if asked.

    Arguments
    ---------
    data_root : str
        What a leading ``$data_root`` in ``wav`` stands for.
    sample_rate : int
        Rate to resample to.
    trim_db : float, optional
        Trim leading and trailing frames more than ``trim_db`` below the
        loudest (:func:`emotion_invariant.data.trim.trim_silence`); None
        keeps the whole recording.

    Returns
    -------
    callable
        ``load(row) -> torch.Tensor``, a 1-D waveform.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> d = tempfile.mkdtemp()
    >>> tone = numpy.sin(numpy.arange(16000) / 4) / 2
    >>> wave = numpy.concatenate([numpy.zeros(16000), tone, numpy.zeros(16000)])
    >>> soundfile.write(os.path.join(d, "a.wav"), wave, 16000)
    >>> row = {"ID": "a", "wav": "$data_root/a.wav"}
    >>> audio_loader(d, 16000)(row).shape
    torch.Size([48000])
    >>> audio_loader(d, 16000, trim_db=40)(row).shape[0] < 20000
    True
    """

    def load(row):
        wave = read_audio(row, data_root, sample_rate)
        if trim_db is None:
            return wave
        return trim_silence(wave, sample_rate, trim_db)

    return load


def view_pipeline(rows_by_id, load, crop, view_maker, copypaste_prob, seed):
    """The training pipeline: anchor crop, its second view, the view's kind.

    Arguments
    ---------
    rows_by_id : dict
        Training manifest rows by ``ID``.
    load : callable
        ``load(row)`` (see :func:`audio_loader`).
    crop : int
        Samples of the anchor and the view (a shorter utterance is kept
        whole).
    view_maker : EmotionCopyPaste
        Makes CopyPaste views; its ``epoch`` seeds the crops too.
    copypaste_prob : float
        Probability of a CopyPaste view rather than a copy of the anchor.
    seed : int
        Base seed.

    Returns
    -------
    callable
        A SpeechBrain pipeline taking ``id`` and providing ``sig``,
        ``view_sig`` and ``view_kind`` (``"copy"`` or the partner's kind).

    Example
    -------
    >>> import torch
    >>> rows = [
    ...     {"ID": "a1", "spk_id": "A", "emo": "neu", "wav": "a1.wav",
    ...      "duration": "1.0"},
    ...     {"ID": "a2", "spk_id": "A", "emo": "ang", "wav": "a2.wav",
    ...      "duration": "1.0"},
    ... ]
    >>> waves = {"a1": torch.zeros(50), "a2": torch.ones(50)}
    >>> maker = EmotionCopyPaste(ParallelIndex(rows), seed=0)
    >>> pipeline = view_pipeline({r["ID"]: r for r in rows},
    ...                          lambda r: waves[r["ID"]], 40, maker, 1.0, 0)
    >>> anchor, view, kind = pipeline.func("a1")
    >>> anchor.shape, view.shape, kind
    (torch.Size([40]), torch.Size([40]), 'emotion')
    """

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("sig", "view_sig", "view_kind")
    def pipeline(uid):
        rng = random.Random(f"{seed}:{view_maker.epoch}:{uid}:crop")
        wave = load(rows_by_id[uid])
        anchor = random_crop(wave, min(crop, wave.numel()), rng)
        yield anchor
        if rng.random() < copypaste_prob:
            view, kind = view_maker(uid, wave, load, anchor.numel())
        else:
            view, kind = anchor.clone(), "copy"
        yield view
        yield kind

    return pipeline


def dataio_prep(hparams):
    """Datasets, the speaker label encoder and the view maker.

    Sets ``hparams["view_maker"]`` (the
    :class:`~emotion_invariant.augment.copypaste.EmotionCopyPaste` of the
    training rows), ``hparams["batch_sampler"]`` (P x K speaker batches, or
    None), ``hparams["epoch_sampler"]`` (an utterance budget per epoch, or
    None) and ``hparams["dev_trials"]`` (the dev speakers' trials). The
    label encoder is saved to ``save_folder/label_encoder.txt`` (and read
    back from there when a run resumes).

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``train_annotation``, ``valid_annotation``,
        ``save_folder``, ``seed``, ``sample_rate``, ``sentence_len``,
        ``trim_silence_db``, ``copypaste_prob``, ``copypaste_segment``,
        ``partner_emotions``, ``dev_trials_per_condition``, and what
        :func:`~emotion_invariant.data.speaker_batches.speaker_batches`
        and :func:`~emotion_invariant.data.steps.epoch_sampler` read.

    Returns
    -------
    tuple
        ``(train, valid, encoder)``: the training dataset (output keys
        ``id, sig, view_sig, view_kind, spk_id_encoded``), the dev dataset
        (``id, sig``) and the speakers'
        ``speechbrain.dataio.encoder.CategoricalEncoder``.

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> from emotion_invariant.data.manifest import write_manifest
    >>> d = tempfile.mkdtemp()
    >>> rng = numpy.random.default_rng(0)
    >>> for split, speakers in (("train", "ab"), ("dev", "cd")):
    ...     rows = []
    ...     for spk in speakers:
    ...         for i, emo in enumerate(("neu", "ang", "neu", "ang")):
    ...             wav = os.path.join(d, f"{spk}{i}.wav")
    ...             soundfile.write(wav, rng.normal(size=3200) / 8, 16000)
    ...             rows.append({"ID": f"{spk}{i}", "duration": 0.2,
    ...                          "wav": wav, "spk_id": spk, "emo": emo})
    ...     write_manifest(rows, os.path.join(d, f"{split}.csv"))
    >>> hparams = {
    ...     "data_folder": d, "train_annotation": f"{d}/train.csv",
    ...     "valid_annotation": f"{d}/dev.csv", "save_folder": d,
    ...     "seed": 1, "sample_rate": 16000, "sentence_len": 0.1,
    ...     "trim_silence_db": None, "copypaste_prob": 1.0,
    ...     "copypaste_segment": [0.3, 0.7], "partner_emotions": None,
    ...     "dev_trials_per_condition": None, "speakers_per_batch": None,
    ...     "utterances_per_epoch": None}
    >>> train, valid, encoder = dataio_prep(hparams)
    >>> item = train[0]
    >>> item["sig"].shape, item["view_sig"].shape, item["view_kind"]
    (torch.Size([1600]), torch.Size([1600]), 'emotion')
    >>> item["spk_id_encoded"], len(encoder), valid[0]["sig"].shape
    (tensor([0]), 2, torch.Size([3200]))
    >>> hparams["batch_sampler"], hparams["epoch_sampler"]
    (None, None)
    """
    data_root = hparams["data_folder"]
    seed = hparams["seed"]
    train_rows = read_manifest(hparams["train_annotation"])
    valid_rows = read_manifest(hparams["valid_annotation"])
    train = sb.dataio.dataset.DynamicItemDataset.from_csv(
        hparams["train_annotation"], replacements={"data_root": data_root}
    )
    valid = sb.dataio.dataset.DynamicItemDataset.from_csv(
        hparams["valid_annotation"], replacements={"data_root": data_root}
    )
    rows_by_id = {row["ID"]: row for row in train_rows}
    valid_by_id = {row["ID"]: row for row in valid_rows}
    index = ParallelIndex(train_rows, seed=seed)
    if hparams["copypaste_prob"] > 0:
        check_copypaste(index, train_rows, hparams["train_annotation"])
    view_maker = EmotionCopyPaste(
        index,
        prob=1.0,
        segment=tuple(hparams["copypaste_segment"]),
        partner_emotions=hparams["partner_emotions"],
        seed=seed,
    )
    load = audio_loader(
        data_root, hparams["sample_rate"], hparams["trim_silence_db"]
    )
    crop = int(hparams["sentence_len"] * hparams["sample_rate"])
    train.add_dynamic_item(
        view_pipeline(
            rows_by_id, load, crop, view_maker, hparams["copypaste_prob"], seed
        )
    )

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("sig")
    def eval_pipeline(uid):
        return load(valid_by_id[uid])

    valid.add_dynamic_item(eval_pipeline)
    encoder = sb.dataio.encoder.CategoricalEncoder()
    encoder.load_or_create(
        os.path.join(hparams["save_folder"], "label_encoder.txt"),
        from_didatasets=[train],
        output_key="spk_id",
    )

    @sb.utils.data_pipeline.takes("spk_id")
    @sb.utils.data_pipeline.provides("spk_id_encoded")
    def label_pipeline(spk_id):
        return encoder.encode_sequence_torch([spk_id])

    train.add_dynamic_item(label_pipeline)
    train.set_output_keys(
        ["id", "sig", "view_sig", "view_kind", "spk_id_encoded"]
    )
    valid.set_output_keys(["id", "sig"])
    speakers = [rows_by_id[uid]["spk_id"] for uid in train.data_ids]
    hparams["view_maker"] = view_maker
    hparams["batch_sampler"] = speaker_batches(hparams, speakers)
    hparams["epoch_sampler"] = epoch_sampler(hparams, train)
    hparams["dev_trials"] = dev_trials(
        valid_rows,
        hparams["dev_trials_per_condition"],
        hparams["valid_annotation"],
    )
    return train, valid, encoder
