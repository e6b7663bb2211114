"""Labels a training run learns from: a label budget, the emotion set.

Fine-tuning on a fraction of the labels (the low-resource setting of
cluster-guided pretraining) keeps the same fraction of every emotion, drawn
with a seed; the emotions a classifier learns are those of its training
rows, and every evaluated row must have one of them.
"""

import random
from collections import Counter

import torch

from emotion_invariant.data.folds import ROLES, check_speaker_independent
from emotion_invariant.data.manifest import (
    EMOTIONS,
    ManifestError,
    read_manifest,
)
from emotion_invariant.hparams import HparamsError


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
        raise HparamsError(f"label_fraction must be in (0, 1], got {fraction}")
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


def emotion_labels(parts, sources=None):
    """The emotions of the training rows, in the shared vocabulary's order.

    Arguments
    ---------
    parts : dict
        ``train``, ``dev`` and ``test`` rows.
    sources : dict, optional
        The manifests' names per part, for errors.

    Returns
    -------
    list of str

    Example
    -------
    >>> train = [{"ID": "a", "emo": "sad"}, {"ID": "b", "emo": "neu"}]
    >>> parts = {"train": train, "dev": [{"ID": "c", "emo": "neu"}],
    ...          "test": [{"ID": "d", "emo": "ang"}]}
    >>> emotion_labels({**parts, "test": []})
    ['neu', 'sad']
    >>> emotion_labels(parts, {"test": "test.csv"})
    Traceback (most recent call last):
    ...
    emotion_invariant.data.manifest.ManifestError: test.csv: utterance d \
has emotion 'ang', which no training utterance has (neu, sad)
    """
    sources = sources or {}
    train_emotions = Counter(row["emo"] for row in parts["train"])
    labels = [emo for emo in EMOTIONS if emo in train_emotions]
    for name in ("dev", "test"):
        for row in parts[name]:
            if row["emo"] not in train_emotions:
                raise ManifestError(
                    f"{sources.get(name, name)}: utterance {row['ID']} has "
                    f"emotion {row['emo']!r}, which no training utterance "
                    f"has ({', '.join(labels)})"
                )
    return labels


def labelled_splits(hparams):
    """The train, dev and test rows of an emotion run, checked.

    The training rows keep ``label_fraction`` of each emotion (drawn with
    ``label_seed``); the three splits must not share a speaker, and every
    dev and test emotion must be a training one.

    Arguments
    ---------
    hparams : dict
        ``<key>_annotation`` for each key of
        :data:`emotion_invariant.data.folds.ROLES`, ``label_fraction`` and
        ``label_seed``.

    Returns
    -------
    tuple
        ``(sources, parts, labels, speakers)``: the manifest path and the
        rows of each split, the emotions (:func:`emotion_labels`) and the
        sorted training speakers.
    """
    sources = {
        name: hparams[f"{key}_annotation"] for name, key in ROLES.items()
    }
    parts = {name: read_manifest(path) for name, path in sources.items()}
    parts["train"] = label_budget(
        parts["train"],
        hparams["label_fraction"],
        hparams["label_seed"],
        sources["train"],
    )
    check_speaker_independent(parts, sources)
    labels = emotion_labels(parts, sources)
    speakers = sorted({row["spk_id"] for row in parts["train"]})
    return sources, parts, labels, speakers


def class_weights(rows, labels):
    """Cross-entropy weights that give every emotion the same total weight.

    ``N / (C * n_c)`` for an emotion with ``n_c`` of the ``N`` rows and
    ``C`` emotions, in the order of ``labels``.

    Example
    -------
    >>> rows = [{"emo": "neu"}] * 3 + [{"emo": "ang"}]
    >>> class_weights(rows, ["neu", "ang"])
    tensor([0.6667, 2.0000])
    """
    counts = Counter(row["emo"] for row in rows)
    counts = torch.tensor([counts[emo] for emo in labels]).float()
    return counts.sum() / (len(labels) * counts)
