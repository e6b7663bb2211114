#!/usr/bin/env python3
"""Emotion from frozen speaker embeddings: the linear probe to beat.

A logistic regression on standardised embeddings (e.g. the published
ECAPA's, as the clustering analysis writes them) learns the emotion from a
fold's training speakers and is scored on its test speakers, with the same
UA / WA / macro-F1 as the emotion recipe. An emotion encoder trained on the
same folds should do better than this, or its training adds nothing to
what the speaker model already knew.

``--centre`` subtracts each speaker's mean embedding first (the training
speakers' and, unlabelled, the test speakers'; see
:mod:`emotion_invariant.emotion.speaker_norm`), taken over all of the
speaker's utterances, over one emotion's (``--centre_emotion neu``) or over
a few drawn at random (``--centre_per_speaker 8``).

Usage (the fold folders are those an emotion run writes,
``<run>/fold_K/manifests`` with ``train.csv`` and ``test.csv``)::

    python scripts/emotion_linear_probe.py \\
        --embeddings <real>/clusters/published-ecapa/embeddings.npz \\
        --folds <ser run>/fold_1/manifests <ser run>/fold_2/manifests \\
        [--centre [--centre_per_speaker 8 | --centre_emotion neu]]
"""

import argparse
import os
import sys

import numpy as np

from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.emotion.metrics import mean_spread
from emotion_invariant.emotion.report import centred_backend
from emotion_invariant.emotion.speaker_norm import (
    reference_rows,
    speaker_centre,
)
from emotion_invariant.scoring.embeddings import load_embeddings


def probe_fold(embeddings, train, test, c=1.0, centre=None):
    """The probe's report: trained on ``train``, scored on ``test``.

    ``centre``: None, or the keyword arguments of
    :func:`emotion_invariant.emotion.speaker_norm.reference_rows` choosing
    the utterances each speaker's mean is taken over.
    """
    labels = sorted({r["emo"] for r in train})
    missing = sorted({r["ID"] for r in train + test} - set(embeddings))
    if missing:
        raise ValueError(
            f"{len(missing)} utterance(s) have no embedding, e.g. {missing[0]}"
        )
    rows = train + test
    x = np.stack([embeddings[r["ID"]] for r in rows])
    if centre is not None:
        x = speaker_centre(
            x, [r["spk_id"] for r in rows], reference_rows(rows, **centre)
        )
    sides = [
        (
            part,
            [r["spk_id"] for r in rows],
            [labels.index(r["emo"]) for r in rows],
        )
        for part, rows in ((x[: len(train)], train), (x[len(train) :], test))
    ]
    # Already centred (or not) above: the recipe's backend, as it is.
    return centred_backend(*sides, labels, c=c, centre=False)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--embeddings", required=True)
    parser.add_argument("--folds", nargs="+", required=True)
    parser.add_argument("--c", type=float, default=1.0)
    parser.add_argument(
        "--centre", action="store_true", help="subtract speaker means"
    )
    parser.add_argument(
        "--centre_emotion", help="take the means over this emotion only"
    )
    parser.add_argument(
        "--centre_per_speaker",
        type=int,
        help="take the means over this many utterances drawn per speaker",
    )
    parser.add_argument("--centre_seed", type=int, default=0)
    args = parser.parse_args(argv)
    centre = None
    if args.centre:
        centre = {
            "emotion": args.centre_emotion,
            "per_speaker": args.centre_per_speaker,
            "seed": args.centre_seed,
        }
    elif args.centre_emotion or args.centre_per_speaker:
        parser.error("--centre_emotion and --centre_per_speaker need --centre")
    ids, matrix = load_embeddings(args.embeddings)
    embeddings = dict(zip(ids, np.asarray(matrix)))
    reports = []
    for folder in args.folds:
        train = read_manifest(os.path.join(folder, "train.csv"))
        test = read_manifest(os.path.join(folder, "test.csv"))
        report = probe_fold(embeddings, train, test, args.c, centre)
        reports.append(report)
        print(
            f"{folder}: UA {100 * report['ua']:.1f} WA {100 * report['wa']:.1f}"
            f" macro-F1 {100 * report['macro_f1']:.1f}"
        )
    for key in ("ua", "wa", "macro_f1"):
        s = mean_spread([r[key] for r in reports])
        print(f"{key}: {100 * s['mean']:.1f} ± {100 * (s['std'] or 0):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
