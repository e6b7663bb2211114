#!/usr/bin/env python3
"""Training overhead of the emotion-invariant step against the baseline.

Runs the speaker-verification recipe's training step for the same number of
batches, at the same batch size, for each ablation row (its file in
``hparams/speaker_verification``, as ``make ablation`` runs it), and prints
the time per training utterance of each as a ratio against the baseline
measured in the same run (rows interleaved, median of ``--repeats``).

    python benchmarks/train_overhead.py [--data_folder DIR] [--batches N]

Without ``--data_folder`` a small synthetic corpus is made in a temporary
folder (espeak-ng needed).
"""

import argparse
import importlib.util
import os
import statistics
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams", "speaker_verification")
ROWS = {
    "baseline": "ecapa_baseline.yaml",
    "+copypaste": "ecapa_copypaste.yaml",
    "+copypaste+erl": "ecapa_copypaste_erl.yaml",
    "+copypaste+erl+mask": "ecapa_emotion_invariant.yaml",
}


def _recipe():
    path = os.path.join(ROOT, "recipes", "speaker_verification", "train.py")
    spec = importlib.util.spec_from_file_location("sv_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def time_row(recipe, data_folder, out, yaml, batches):
    """Seconds per training utterance of one row."""
    brain, hparams, train, _ = recipe.build(
        [
            os.path.join(HPARAMS, yaml),
            f"--data_folder={data_folder}",
            f"--output_folder={out}",
            "--debug",
            f"--debug_batches={batches}",
            "--debug_epochs=1",
        ]
    )
    start = time.perf_counter()
    brain.fit(
        hparams["epoch_counter"],
        train,
        train_loader_kwargs=hparams["train_dataloader_options"],
    )
    seconds = time.perf_counter() - start
    return seconds / (batches * hparams["batch_size"] * 2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_folder", help="a synthesized corpus")
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    recipe = _recipe()
    with tempfile.TemporaryDirectory() as tmp:
        data_folder = args.data_folder
        if data_folder is None:
            from emotion_invariant.corpora.synth import synthesize_corpus

            data_folder = os.path.join(tmp, "corpus")
            synthesize_corpus(data_folder, speakers=24, utterances=4)
        times = {name: [] for name in ROWS}
        for repeat in range(args.repeats):
            for name, yaml in ROWS.items():
                out = os.path.join(tmp, f"{name}-{repeat}")
                times[name].append(
                    time_row(recipe, data_folder, out, yaml, args.batches)
                )
    base = statistics.median(times["baseline"])
    print(
        f"\n{args.batches} batches of 2 x 32 utterances, median of "
        f"{args.repeats}, {torch.get_num_threads()} threads"
    )
    print(f"{'row':24s} {'ms/utterance':>12s} {'ratio':>7s}")
    for name, values in times.items():
        ms = 1000 * statistics.median(values)
        print(f"{name:24s} {ms:12.2f} {ms / 1000 / base:7.3f}")


if __name__ == "__main__":
    main()
