"""The speaker model of the verification recipe: its AAM head sized to the
training speakers, the published encoder loaded, the fine-tuning set-up
(frozen blocks, the pretrained copies the losses compare against) and the
head imprinted from the speakers' mean embeddings.

The generic pieces (frozen blocks, L2-SP, imprinting, resized outputs) are
in :mod:`emotion_invariant.models.finetune`; the emotion recipe uses them
too.
"""

import copy
from functools import partial

import torch

from emotion_invariant.data.manifest import (
    read_manifest,
    sample_per_group,
    select,
)
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.finetune import (
    L2SP,
    freeze_lower_blocks,
    imprint_head,
    resize_classifier,
)
from emotion_invariant.models.pretrained import load_pretrained_ecapa
from emotion_invariant.scoring.extract import extract_embeddings


def load_speaker_model(hparams, n_speakers):
    """Size the AAM head to the speakers; load the pretrained encoder.

    The head gets one fresh row per training speaker
    (:func:`resize_classifier`); the encoder's weights come from
    ``pretrained_path`` when it is set
    (:func:`~emotion_invariant.models.pretrained.load_pretrained_ecapa`).
    A pretrained head belongs to other speakers, so it is not reused.

    Arguments
    ---------
    hparams : dict
        ``classifier``, ``embedding_model`` and ``pretrained_path``.
    n_speakers : int
        Training speakers.

    Example
    -------
    >>> from speechbrain.lobes.models.ECAPA_TDNN import Classifier
    >>> hparams = {"classifier": Classifier(input_size=4, out_neurons=2),
    ...            "embedding_model": None, "pretrained_path": None}
    >>> load_speaker_model(hparams, 3)
    >>> hparams["classifier"].weight.shape
    torch.Size([3, 4])
    """
    resize_classifier(hparams["classifier"], n_speakers)
    if hparams["pretrained_path"]:
        load_pretrained_ecapa(
            hparams["pretrained_path"], hparams["embedding_model"]
        )


def setup_finetuning(hparams):
    """Frozen blocks, the pretrained copies the losses compare against.

    Checks ``erl_target`` and ``head_init``, freezes ``freeze_blocks``
    lower blocks of ``embedding_model``, and sets ``frozen_blocks``,
    ``encoder_trainable``, ``teacher`` (a frozen copy of the pretrained
    encoder when a loss compares with it) and ``l2sp`` in ``hparams``.
    """
    encoder = hparams["embedding_model"]
    needs_teacher = (
        hparams["distill_weight"] > 0
        or hparams["erl_target"] == "pretrained"
        and hparams["erl_weight"] > 0
    )
    if hparams["erl_target"] not in ("view", "pretrained", "neutral"):
        raise ValueError(
            f"erl_target: {hparams['erl_target']!r}; expected view, "
            "pretrained or neutral"
        )
    if hparams["head_init"] not in ("random", "imprint"):
        raise ValueError(
            f"head_init: {hparams['head_init']!r}; expected random or imprint"
        )
    if (needs_teacher or hparams["erl_target"] == "neutral") and not hparams[
        "pretrained_path"
    ]:
        raise ValueError(
            "distill_weight > 0 and erl_target: pretrained or neutral "
            "compare with the pretrained model: set pretrained_path"
        )
    hparams["frozen_blocks"] = freeze_lower_blocks(
        encoder, hparams["freeze_blocks"]
    )
    hparams["encoder_trainable"] = [
        p for p in encoder.parameters() if p.requires_grad
    ]
    hparams["teacher"] = None
    if needs_teacher:
        teacher = copy.deepcopy(encoder).eval().requires_grad_(False)
        hparams["teacher"] = teacher
    hparams["l2sp"] = L2SP(encoder) if hparams["l2sp_weight"] > 0 else None


def speaker_means(modules, hparams, encoder, device, emotion=None):
    """Each training speaker's unit mean embedding under the current model.

    Over at most ``imprint_utterances`` utterances a speaker (drawn with the
    seed), of one ``emotion`` when given. Returns ``[speakers, dim]`` and
    which speakers had an utterance.
    """
    rows = read_manifest(hparams["train_annotation"])
    if emotion is not None:
        rows = select(rows, emo=emotion)
    chosen = sample_per_group(
        rows, ("spk_id",), hparams["imprint_utterances"], hparams["seed"]
    )
    weight = modules.classifier.weight
    means = torch.zeros(weight.shape)
    if not chosen:
        return means, torch.zeros(len(means), dtype=torch.bool)
    modules.eval()
    ids, embeddings = extract_embeddings(
        chosen,
        partial(embed, modules),
        batch_size=hparams["eval_batch_size"],
        device=device,
        data_root=hparams["data_folder"],
        sample_rate=hparams["sample_rate"],
    )
    speaker_of = {row["ID"]: row["spk_id"] for row in chosen}
    labels = torch.tensor([encoder.lab2ind[speaker_of[i]] for i in ids])
    seen = imprint_head(means, embeddings, labels)
    return means, seen


def init_head(modules, hparams, encoder, device):
    """Imprint the AAM head, and the neutral targets, from speaker means.

    With ``head_init: imprint`` and no checkpoint to resume, each row of
    ``modules.classifier`` becomes its speaker's mean embedding under the
    pretrained model; with ``erl_target: neutral`` the returned targets are
    each speaker's mean neutral embedding (the all-emotion mean for a
    speaker with no neutral utterance). Both come from the pretrained
    weights: a checkpoint, if any, is recovered later, in ``fit()``.

    Arguments
    ---------
    modules, hparams, encoder, device
        As :func:`speaker_means` takes them; ``hparams`` also gives
        ``head_init``, ``erl_target`` and ``checkpointer``.

    Returns
    -------
    torch.Tensor or None
        ``[speakers, dim]`` neutral targets, or None.
    """
    resuming = hparams["checkpointer"].find_checkpoint() is not None
    imprint = hparams["head_init"] == "imprint" and not resuming
    neutral = hparams["erl_target"] == "neutral"
    if not (imprint or neutral):
        return None
    means, _ = speaker_means(modules, hparams, encoder, device)
    if imprint:
        with torch.no_grad():
            modules.classifier.weight.copy_(means)
    if not neutral:
        return None
    targets, seen = speaker_means(modules, hparams, encoder, device, "neu")
    targets[~seen] = means[~seen]
    return targets
