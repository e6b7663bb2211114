#!/usr/bin/env python3
"""Speed of fine-tuning the published-size ECAPA-TDNN, per training utterance.

Times one training step (fbank, sentence normalisation, ECAPA-TDNN,
AAM-softmax, backward, Adam) on a batch of random 1.5 s waveforms plus one
view each, as the speaker recipe's step sees them, for the published model's
sizes (``ecapa_voxceleb_finetune.yaml``) with 0, 4 and 6 frozen stages, and
embedding extraction of 3 s utterances. Each is printed as seconds per
utterance and as a ratio against the demo model trained from scratch
(``ecapa_base.yaml``), measured in the same run. Data loading is not
included. Median of ``--repeats`` after one warm-up step.

    python benchmarks/finetune_speed.py [--device cuda] [--batch 32]
"""

import argparse
import os
import statistics
import time

import torch

from emotion_invariant.hparams import load_hparams
from emotion_invariant.models.finetune import freeze_lower_blocks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams", "speaker_verification")


def _modules(yaml, device, speakers, frozen=0):
    hparams, _, _ = load_hparams(
        os.path.join(HPARAMS, yaml), {"data_folder": "unused"}
    )
    model = hparams["embedding_model"].to(device)
    freeze_lower_blocks(model, frozen)
    head = torch.nn.Linear(hparams["lin_neurons"], speakers, bias=False)
    return hparams, model, head.to(device)


def _sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_training(yaml, device, batch, frozen, repeats, sample_rate=16000):
    """Seconds per utterance of one training step (median)."""
    hparams, model, head = _modules(yaml, device, speakers=100, frozen=frozen)
    feats_fn = hparams["compute_features"].to(device)
    norm = hparams["mean_var_norm"]
    loss_fn = hparams["compute_cost"]
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params + list(head.parameters()), lr=1e-5)
    wavs = torch.randn(2 * batch, int(1.5 * sample_rate), device=device)
    lens = torch.ones(2 * batch, device=device)
    labels = torch.randint(0, 100, (2 * batch, 1), device=device)
    model.train()
    times = []
    for i in range(repeats + 1):
        _sync(device)
        start = time.perf_counter()
        feats = norm(feats_fn(wavs), lens)
        emb = model(feats, lens)
        cos = torch.nn.functional.linear(
            torch.nn.functional.normalize(emb.squeeze(1), dim=-1),
            torch.nn.functional.normalize(head.weight, dim=-1),
        )
        loss = loss_fn(cos.unsqueeze(1), labels, lens)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        _sync(device)
        if i:  # the first step warms up allocators and kernels
            times.append(time.perf_counter() - start)
    return statistics.median(times) / (2 * batch)


def time_embedding(yaml, device, batch, repeats, seconds=3.0, rate=16000):
    """Seconds per utterance of embedding extraction (median)."""
    hparams, model, _ = _modules(yaml, device, speakers=1)
    feats_fn = hparams["compute_features"].to(device)
    norm = hparams["mean_var_norm"]
    model.eval()
    wavs = torch.randn(batch, int(seconds * rate), device=device)
    lens = torch.ones(batch, device=device)
    times = []
    with torch.no_grad():
        for i in range(repeats + 1):
            _sync(device)
            start = time.perf_counter()
            model(norm(feats_fn(wavs), lens), lens)
            _sync(device)
            if i:
                times.append(time.perf_counter() - start)
    return statistics.median(times) / batch


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = "cuda" if torch.cuda.is_available() else "cpu"
    parser.add_argument("--device", default=default)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    name = (
        torch.cuda.get_device_name(args.device)
        if args.device.startswith("cuda")
        else f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"device: {name}; batch {args.batch} utterances + their views")
    torch.manual_seed(0)
    reference = time_training(
        "ecapa_base.yaml", args.device, args.batch, 0, args.repeats
    )
    print("| model | step | s / utterance | ratio |")
    print("|---|---|---:|---:|")
    print(f"| from scratch (demo) | train | {reference:.4f} | 1.00 |")
    for frozen in (0, 4, 6):
        t = time_training(
            "ecapa_voxceleb_finetune.yaml",
            args.device,
            args.batch,
            frozen,
            args.repeats,
        )
        print(
            f"| published, {frozen} stages frozen | train | {t:.4f} | "
            f"{t / reference:.2f} |"
        )
    ref_embed = time_embedding("ecapa_base.yaml", args.device, 8, args.repeats)
    big_embed = time_embedding(
        "ecapa_voxceleb_finetune.yaml", args.device, 8, args.repeats
    )
    print(f"| from scratch (demo) | embed 3 s | {ref_embed:.4f} | 1.00 |")
    print(
        f"| published | embed 3 s | {big_embed:.4f} | "
        f"{big_embed / ref_embed:.2f} |"
    )


if __name__ == "__main__":
    main()
