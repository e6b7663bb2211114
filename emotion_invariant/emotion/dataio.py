"""The emotion recognition recipe's datasets.

SpeechBrain ``DynamicItemDataset`` objects of the train, dev and test
manifests: training audio cropped at random (seeded by seed, epoch and
utterance, so a resumed run crops as an unbroken one), evaluation audio
whole and sorted by duration, emotions and training speakers as integer
labels.
"""

import random

import speechbrain as sb
import torch

from emotion_invariant.data.audio import random_segment, read_audio
from emotion_invariant.data.labels import class_weights, labelled_splits


def dataio_prep(hparams):
    """Datasets, emotion labels, training speakers and class weights.

    Sets ``hparams["emotion_labels"]`` (the training emotions, in the
    shared vocabulary's order), ``hparams["train_speakers"]`` (sorted) and
    ``hparams["class_weights"]`` (None unless ``class_balanced``).

    Arguments
    ---------
    hparams : dict
        ``data_folder``, ``train_annotation``, ``valid_annotation``,
        ``test_annotation``, ``label_fraction``, ``label_seed``,
        ``max_train_len``, ``sample_rate``, ``seed``, ``epoch_counter``
        and ``class_balanced``.

    Returns
    -------
    dict
        ``train``, ``dev`` and ``test`` datasets with output keys ``id,
        sig, emo_encoded, spk_encoded`` (-1 for a speaker not in training).

    Example
    -------
    >>> import os, tempfile, numpy, soundfile
    >>> from speechbrain.utils.epoch_loop import EpochCounter
    >>> from emotion_invariant.data.manifest import write_manifest
    >>> d = tempfile.mkdtemp()
    >>> for split, spk in (("train", "a"), ("dev", "b"), ("test", "c")):
    ...     rows = []
    ...     for i, emo in enumerate(("neu", "ang")):
    ...         wav = os.path.join(d, f"{spk}{i}.wav")
    ...         soundfile.write(wav, numpy.zeros(3200), 16000)
    ...         rows.append({"ID": f"{spk}{i}", "duration": 0.2,
    ...                      "wav": wav, "spk_id": spk, "emo": emo})
    ...     write_manifest(rows, os.path.join(d, f"{split}.csv"))
    >>> hparams = {
    ...     "data_folder": d, "train_annotation": f"{d}/train.csv",
    ...     "valid_annotation": f"{d}/dev.csv",
    ...     "test_annotation": f"{d}/test.csv", "label_fraction": 1.0,
    ...     "label_seed": 0, "max_train_len": 0.1, "sample_rate": 16000,
    ...     "seed": 1, "epoch_counter": EpochCounter(1),
    ...     "class_balanced": False}
    >>> data = dataio_prep(hparams)
    >>> item = data["train"][1]
    >>> item["sig"].shape, item["emo_encoded"], item["spk_encoded"]
    (torch.Size([1600]), tensor([1]), tensor([0]))
    >>> data["test"][0]["sig"].shape, data["test"][0]["spk_encoded"]
    (torch.Size([3200]), tensor([-1]))
    >>> hparams["emotion_labels"], hparams["train_speakers"]
    (['neu', 'ang'], ['a'])
    """
    data_root = hparams["data_folder"]
    names, parts, labels, speakers = labelled_splits(hparams)
    emo_index = {emo: i for i, emo in enumerate(labels)}
    spk_index = {spk: i for i, spk in enumerate(speakers)}
    rows_by_id = {row["ID"]: row for part in parts.values() for row in part}
    crop = int(hparams["max_train_len"] * hparams["sample_rate"])
    seed = hparams["seed"]
    counter = hparams["epoch_counter"]

    def load(uid):
        return read_audio(rows_by_id[uid], data_root, hparams["sample_rate"])

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("sig")
    def train_audio(uid):
        rng = random.Random(f"{seed}:{counter.current}:{uid}")
        return random_segment(load(uid), crop, rng)

    @sb.utils.data_pipeline.takes("id")
    @sb.utils.data_pipeline.provides("sig")
    def eval_audio(uid):
        return load(uid)

    @sb.utils.data_pipeline.takes("emo", "spk_id")
    @sb.utils.data_pipeline.provides("emo_encoded", "spk_encoded")
    def label_pipeline(emo, spk_id):
        yield torch.LongTensor([emo_index[emo]])
        yield torch.LongTensor([spk_index.get(spk_id, -1)])

    datasets = {}
    for name, path in names.items():
        data = sb.dataio.dataset.DynamicItemDataset.from_csv(
            path, replacements={"data_root": data_root}
        )
        if name == "train" and hparams["label_fraction"] < 1:
            kept = {row["ID"] for row in parts["train"]}
            data = data.filtered_sorted(key_test={"id": kept.__contains__})
        data.add_dynamic_item(train_audio if name == "train" else eval_audio)
        data.add_dynamic_item(label_pipeline)
        data.set_output_keys(["id", "sig", "emo_encoded", "spk_encoded"])
        if name != "train":
            data = data.filtered_sorted(sort_key="duration", reverse=True)
        datasets[name] = data

    hparams["emotion_labels"] = labels
    hparams["train_speakers"] = speakers
    hparams["class_weights"] = None
    if hparams["class_balanced"]:
        hparams["class_weights"] = class_weights(parts["train"], labels)
    return datasets
