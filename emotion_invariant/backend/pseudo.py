"""Emotion labels predicted by an emotion model, for the members that read
emotion labels (emotion NAP, its chain with WCCN, consistency on emotion
pairs) on a corpus nobody labelled.

The model is an emotion recognition run exported by ``python -m
emotion_invariant.models.export`` (SpeechBrain's ``EncoderClassifier``
layout), trained on another corpus: its predictions replace the ``emo``
column of the utterances the back-end is fitted on, never of the trials it
is scored on. Its label set need not be the corpus's: a projection only
groups each speaker's utterances by the label.

Usage::

    python -m emotion_invariant.backend label --emotion-model SER_MODEL \\
        --manifest CSV [--data-root DIR] --out LABELLED.csv

writes the manifest with the predicted labels in ``emo`` (the corpus's own,
if any, kept in ``emo_true``), which ``fit --kind emotion_nap`` then reads;
the speaker recipe's ``backend_emotion_model`` does the same at evaluation.
"""

import os
import pathlib
import tempfile
from collections import Counter

import torch

from emotion_invariant.backend.base import BackendError
from emotion_invariant.models.folder import read_config
from emotion_invariant.scoring.extract import extract_embeddings


class EmotionLabeller:
    """An exported emotion model that labels utterances.

    Arguments
    ---------
    folder : str or os.PathLike
        An emotion model folder (``hyperparams.yaml`` with ``task:
        emotion``).
    device : str
        Where the model runs.

    Raises
    ------
    BackendError
        When the folder is not an emotion model.
    """

    def __init__(self, folder, device="cpu"):
        from speechbrain.inference.classifiers import EncoderClassifier

        folder, device = pathlib.Path(folder), str(device)
        config = folder / "hyperparams.yaml"
        if not config.is_file():
            raise BackendError(
                f"--emotion-model {folder}: no hyperparams.yaml; expected "
                "an emotion model folder (python -m "
                "emotion_invariant.models.export on an emotion run)"
            )
        task = read_config(config).get("task")
        if task != "emotion":
            raise BackendError(
                f"--emotion-model {folder}: a {task or 'speaker'} model; "
                "expected an emotion model (task: emotion)"
            )
        with tempfile.TemporaryDirectory() as savedir:
            self.model = EncoderClassifier.from_hparams(
                source=str(folder), savedir=savedir, run_opts={"device": device}
            )
        self.model.mods.eval()
        self.folder = folder
        self.device = device
        self.sample_rate = self.model.hparams.__dict__.get("sample_rate", 16000)

    def labels(self):
        """The model's emotion labels, in class order."""
        encoder = self.model.hparams.label_encoder
        return [encoder.ind2lab[i] for i in range(len(encoder))]

    def predict(self, rows, data_root=None, batch_size=16, progress=True):
        """The most probable label of each row's utterance.

        Arguments
        ---------
        rows : list of dict
            Manifest rows (``ID``, ``wav``).
        data_root : str, optional
            What ``$data_root`` stands for.
        batch_size : int
            Utterances classified at once.
        progress : bool
            Show a progress bar.

        Returns
        -------
        list of str
            One label per row, in row order.
        """

        def scores(wavs, lens):
            return self.model.classify_batch(wavs, lens)[0]

        with torch.no_grad():
            ids, probs = extract_embeddings(
                rows,
                scores,
                batch_size=batch_size,
                device=self.device,
                data_root=data_root,
                sample_rate=self.sample_rate,
                progress=progress,
            )
        labels = self.labels()
        by_id = dict(zip(ids, probs.reshape(len(ids), -1).argmax(1).tolist()))
        return [labels[by_id[row["ID"]]] for row in rows]


def with_labels(rows, labels):
    """The rows with ``labels`` in ``emo``, their own in ``emo_true``.

    Example
    -------
    >>> with_labels([{"ID": "a", "emo": "sad"}], ["neu"])
    [{'ID': 'a', 'emo': 'neu', 'emo_true': 'sad'}]
    """
    if len(rows) != len(labels):
        raise ValueError(f"{len(rows)} rows and {len(labels)} labels")
    return [
        {**row, "emo": label, "emo_true": row.get("emo", "")}
        for row, label in zip(rows, labels)
    ]


def agreement(rows):
    """How the predicted labels of labelled rows fall: ``{(true, predicted):
    count}``, for a report; rows with no ``emo_true`` are left out.

    Example
    -------
    >>> agreement([{"emo": "neu", "emo_true": "neu"},
    ...            {"emo": "neu", "emo_true": "sad"},
    ...            {"emo": "ang", "emo_true": ""}])
    Counter({('neu', 'neu'): 1, ('sad', 'neu'): 1})
    """
    return Counter(
        (row["emo_true"], row["emo"]) for row in rows if row.get("emo_true")
    )


def label_manifest(
    emotion_model,
    manifest,
    out,
    data_root=None,
    batch_size=16,
    device="cpu",
    progress=True,
):
    """Write ``manifest`` with each utterance's predicted emotion in ``emo``.

    Arguments
    ---------
    emotion_model : str or os.PathLike
        An exported emotion model folder.
    manifest : str
        The utterances to label.
    out : str
        The labelled manifest to write (atomically); the corpus's own
        labels, if any, go to ``emo_true``.
    data_root : str, optional
        What ``$data_root`` stands for (default: the manifest's folder).
    batch_size : int
        Utterances classified at once.
    device : str
        Where the model runs.
    progress : bool
        Show a progress bar.

    Returns
    -------
    list of dict
        The labelled rows.
    """
    from emotion_invariant.data.manifest import read_manifest, write_manifest

    if os.path.exists(out) and os.path.samefile(out, manifest):
        raise BackendError(f"--out {out}: is the input; choose a new file")
    if data_root is None:
        data_root = os.path.dirname(os.path.abspath(manifest))
    rows = read_manifest(
        manifest, check_audio=True, data_root=data_root, allow_empty_emo=True
    )
    labeller = EmotionLabeller(emotion_model, device)
    labelled = with_labels(
        rows, labeller.predict(rows, data_root, batch_size, progress)
    )
    write_manifest(labelled, out)
    return labelled
