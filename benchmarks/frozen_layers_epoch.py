#!/usr/bin/env python3
"""Seconds per epoch of the frozen-layer emotion head on cached features.

Trains the emotion recipe's frozen-layer head (``frozen_layers: true``,
``ser_ecapa_frozen_layers.yaml``) on random features of RAVDESS's size
and of the published ECAPA's layers (a fold's 20 non-test actors of 60
utterances: 17 for training, 3 for dev; 14,528 features each), through
the recipe's own Brain, so an epoch is what a run pays: its training
steps, the dev evaluation and the checkpoint. Each head type is timed
with and without the speaker adversary, and with the speaker
mean matching term (``speaker_means_weight``: a pass over the whole
training set at every step). The reference, measured in the
same run: one training step of the fine-tuned preset
(``ser_ecapa_voxceleb.yaml``: the published ECAPA's sizes, its lower four
stages frozen) on ``--reference_batch`` random 3 s crops, scaled to an
epoch of its ``batch_size`` (32); and one forward pass of the frozen
encoder on one 3.5 s utterance, the one-off cost of an utterance's cached
features. The target is 5 s an epoch on 2 CPU cores.

    python benchmarks/frozen_layers_epoch.py [--epochs 3] [--threads 2]
"""

import argparse
import importlib.util
import os
import tempfile
import time

import torch
import torch.nn.functional as F

from emotion_invariant.emotion.layer_features import (
    LAYERS,
    layer_dims,
    layer_statistics,
)
from emotion_invariant.emotion.layer_run import LayerData
from emotion_invariant.emotion.speaker_norm import SpeakerStatistics
from emotion_invariant.hparams import load_hparams
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.finetune import freeze_lower_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams", "emotion_recognition")
EMOTIONS = ["neu", "cal", "hap", "sad", "ang", "fea", "dis", "sur"]


def _recipe():
    path = os.path.join(ROOT, "recipes", "emotion_recognition", "train.py")
    spec = importlib.util.spec_from_file_location("ser_train", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class SyntheticData(LayerData):
    """:class:`LayerData` of random features, without audio."""

    def __init__(self, dims, speakers, per_speaker, seed=0):
        gen = torch.Generator().manual_seed(seed)
        width = sum(dims.values())
        self.dims, self.labels = dims, EMOTIONS
        self.speed_rows = []
        self.parts, self.features, self.normalised = {}, {}, {}
        for role, spk in speakers.items():
            self.parts[role] = [
                {"ID": f"{s}_{i}", "spk_id": s, "emo": EMOTIONS[i % 8]}
                for s in spk
                for i in range(per_speaker)
            ]
            self.features[role] = torch.randn(
                len(self.parts[role]), width, generator=gen
            )
        self.speakers = speakers["train"]
        self.norm = SpeakerStatistics("centre").fit(
            self.features["train"], self.spk("train")
        )
        for role in speakers:
            self.normalised[role] = self.norm.apply(
                self.features[role], self.spk(role)
            )


def epoch_seconds(recipe, hparams, data, point, epochs):
    """Seconds of one epoch: (epochs - 1) epochs more than one, averaged."""
    run_opts = {"device": "cpu"}
    times = {}
    for n in (1, epochs):
        with tempfile.TemporaryDirectory() as out:
            h = {
                **hparams,
                "number_of_epochs": n,
                "save_folder": os.path.join(out, "save"),
            }
            start = time.perf_counter()
            recipe.train_point(h, run_opts, data, point)
            times[n] = time.perf_counter() - start
    return (times[epochs] - times[1]) / (epochs - 1)


def reference_step(batch):
    """Seconds of one training step of the fine-tuned preset."""
    hparams = load_hparams(
        os.path.join(HPARAMS, "ser_ecapa_voxceleb.yaml"),
        {"data_folder": "unused", "output_folder": tempfile.mkdtemp()},
    )[0]
    modules = torch.nn.ModuleDict(hparams["modules"])
    freeze_lower_blocks(modules["embedding_model"], 4)
    head = modules["emotion_classifier"]
    params = [p for p in modules.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-3)
    wavs = 0.1 * torch.randn(batch, 48000)
    lens = torch.ones(batch)
    labels = torch.zeros(batch, dtype=torch.long)
    seconds = []
    for _ in range(2):  # the first step allocates
        start = time.perf_counter()
        logits = head(embed(modules, wavs, lens).squeeze(1))
        loss = F.cross_entropy(logits.reshape(batch, -1), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        seconds.append(time.perf_counter() - start)
    return seconds[-1], modules


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reference_batch", type=int, default=8)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = tempfile.mkdtemp()
    hparams = load_hparams(
        os.path.join(HPARAMS, "ser_ecapa_frozen_layers.yaml"),
        {"data_folder": "unused", "output_folder": out},
    )[0]
    dims = layer_dims(hparams["embedding_model"])
    speakers = {
        "train": [f"a{i:02d}" for i in range(17)],
        "dev": [f"d{i}" for i in range(3)],
    }
    data = SyntheticData(dims, speakers, per_speaker=60)
    hparams.update(
        emotion_labels=EMOTIONS,
        train_speakers=data.speakers,
        class_weights=None,
        steps_per_epoch=len(data.parts["train"]) // hparams["batch_size"],
    )
    print(
        f"{len(data.parts['train'])} training and {len(data.parts['dev'])} "
        f"dev utterances, {sum(dims.values())} features "
        f"({', '.join(LAYERS)}), batch {hparams['batch_size']}, "
        f"{torch.get_num_threads()} threads"
    )
    recipe = _recipe()
    step, modules = reference_step(args.reference_batch)
    reference = step * hparams["batch_size"] / args.reference_batch
    reference *= hparams["steps_per_epoch"]
    wav = 0.1 * torch.randn(1, 56000)
    modules.eval()
    with torch.no_grad():
        for _ in range(2):  # the first pass allocates
            start = time.perf_counter()
            layer_statistics(modules, wav, torch.ones(1))
            extract = time.perf_counter() - start
    print(
        f"reference: an epoch of the fine-tuned preset {reference:.1f} s "
        f"(one step of {args.reference_batch} crops {step:.2f} s, scaled to "
        f"{hparams['steps_per_epoch']} steps of {hparams['batch_size']}); "
        f"features of one 3.5 s utterance {extract:.2f} s"
    )
    variants = {
        "adversary off": {},
        "adversary on": {"adv_weight": 1.0, "grl_lambda": 0.1},
        "speaker means": {"speaker_means_weight": 10.0},
    }
    for head_type in ("linear", "mlp"):
        for name, switches in variants.items():
            h = {**hparams, **switches}
            point = {"head_type": head_type, "layer_set": "all", "lr": 1e-3}
            seconds = epoch_seconds(recipe, h, data, point, args.epochs)
            print(
                f"{head_type:6s} {name:13s}: {seconds:6.2f} s an epoch, "
                f"{reference / seconds:7.1f}x faster than the fine-tuned "
                "preset's"
            )


if __name__ == "__main__":
    main()
