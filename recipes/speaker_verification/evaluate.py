#!/usr/bin/env python3
"""Evaluate a trained speaker-verification model on emotional trials.

Embeds the test speakers' utterances with the best checkpoint (lowest dev
EER; :func:`emotion_invariant.verification.evaluation.evaluate`), optionally
removes the training speakers' emotion directions
(``emotion_nap_dims``, ``nap.npz``), scores the emotional trial list, and
writes to ``eval_folder``: ``embeddings.npz`` (as scored), ``scores.txt``,
``report.json`` and ``report.md`` (EER and minDCF overall and per
condition), ``report_det.png`` (DET curves) and ``emotion_eer.png`` (EER per
emotion against neutral enrolment).

``train.py`` runs this after training; on its own::

    python recipes/speaker_verification/evaluate.py \\
        hparams/speaker_verification/ecapa_emotion_invariant.yaml \\
        --data_folder results/demo/corpus --output_folder results/sv/ei

With no checkpoint in the output folder, the model of ``pretrained_path``
is evaluated as it is (zero-shot): the first thing to run on a new corpus
(a ``--save_folder`` outside the output folder names another run's
checkpoints, and is an error when it holds none)::

    python recipes/speaker_verification/evaluate.py \\
        hparams/speaker_verification/ecapa_voxceleb_finetune.yaml \\
        --corpus ravdess --data_folder /path/to/Audio_Speech_Actors_01-24 \\
        --experiment zero_shot --output_folder results/ravdess/zero_shot
"""

import sys

import torch

from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.distributed import DistributedBrain
from emotion_invariant.experiment import USER_ERRORS, start_verification
from emotion_invariant.verification.evaluation import check_checkpoint, evaluate
from emotion_invariant.verification.model import load_speaker_model


def main(argv=None):
    """Evaluate the best checkpoint of a finished (or running) training."""
    hparams, run_opts = start_verification(
        argv or sys.argv[1:], check_checkpoint
    )
    # The checkpoint's head has a row per training speaker.
    rows = read_manifest(hparams["train_annotation"])
    load_speaker_model(hparams, len({row["spk_id"] for row in rows}))
    brain = DistributedBrain(
        modules=hparams["modules"],
        hparams=hparams,
        run_opts=run_opts,
        checkpointer=hparams["checkpointer"],
    )
    with torch.no_grad():
        return evaluate(brain, hparams)


if __name__ == "__main__":
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
