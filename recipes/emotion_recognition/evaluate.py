#!/usr/bin/env python3
"""Evaluate speech emotion recognition on unseen speakers, with a probe.

For one run (the speaker split or a fold), embeds the test speakers'
utterances with the best checkpoint (highest dev UA) and writes to
``eval_folder``: ``report.json`` and ``report.md`` (UA, WA, macro-F1, per
class scores), ``confusion.txt``, ``confusion.png`` and ``predictions.csv``.
The same report holds the speaker-leakage probe: a logistic regression
trained on frozen embeddings of some of each training speaker's utterances
and scored on the others, beside its chance levels.

Over runs, :func:`emotion_invariant.emotion.report.summarize` writes
``report.json``, ``report.md``, ``confusion.txt`` and ``confusion.png``
into the output folder: one row per fold, the mean and standard
deviation over folds, and the pooled confusion matrix of all folds.

``train.py`` runs this after training; on its own (``--fold all`` for
every fold, ``--fold K`` for one)::

    python recipes/emotion_recognition/evaluate.py \\
        hparams/emotion_recognition/ser_adversarial.yaml \\
        --data_folder results/demo/corpus --output_folder results/ser/adv
"""

import sys

from emotion_invariant.data.labels import labelled_splits
from emotion_invariant.distributed import DistributedBrain
from emotion_invariant.emotion.layer_eval import evaluate_saved, summarize_runs
from emotion_invariant.emotion.layer_run import check_emotion_settings
from emotion_invariant.emotion.model import size_model
from emotion_invariant.emotion.report import evaluate
from emotion_invariant.experiment import USER_ERRORS, requested_folds, start_run


def main(argv=None):
    """Evaluate the best checkpoint of each requested run; summarise."""
    argv = list(argv or sys.argv[1:])
    hparams = None
    for fold in requested_folds(argv, check_emotion_settings):
        hparams, run_opts = start_run(argv, fold, check_emotion_settings)
        if hparams["frozen_layers"]:
            evaluate_saved(hparams, run_opts.get("device", "cpu"))
            continue
        _, _, labels, speakers = labelled_splits(hparams)
        hparams["emotion_labels"] = labels
        size_model(hparams, len(labels), len(speakers))
        brain = DistributedBrain(
            modules=hparams["modules"],
            hparams=hparams,
            run_opts=run_opts,
            checkpointer=hparams["checkpointer"],
        )
        evaluate(brain, hparams)
    return summarize_runs(hparams)


if __name__ == "__main__":
    try:
        main()
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(1)
