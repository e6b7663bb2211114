#!/usr/bin/env python3
"""CPU training step with glibc's default allocator settings and with
``keep_freed_memory`` (what every recipe sets at start-up).

Each setting runs in a process of its own (malloc's settings hold for a
whole process), one after the other, ``--rounds`` times alternating; each
times one fine-tuning step of the published-size ECAPA-TDNN as
``benchmarks/finetune_speed.py`` does (``--frozen`` lower stages, a batch
of random 1.5 s waveforms plus one view each) and counts the minor page
faults (model set-up and every step) and the peak resident memory.
Printed: seconds per utterance (median over rounds of each process's
median step), faults, peak memory, and the time's ratio against the
default measured in the same run.

    python benchmarks/cpu_memory.py [--batch 32] [--frozen 4] [--rounds 2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys

CHILD = """
import json, resource, sys
import torch
sys.path.insert(0, {here!r})
import finetune_speed
from emotion_invariant.memory import keep_freed_memory
batch, frozen, repeats, limit_mb = (int(a) for a in sys.argv[1:5])
applied = keep_freed_memory(limit_mb << 20) if limit_mb else False
start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
seconds = finetune_speed.time_training(
    "ecapa_voxceleb_finetune.yaml", "cpu", batch, frozen, repeats
)
usage = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{
    "applied": applied,
    "seconds": seconds,
    "faults": usage.ru_minflt - start,
    "peak_mb": usage.ru_maxrss / 1024,
    "threads": torch.get_num_threads(),
}}))
"""


def _run(limit_mb, batch, frozen, repeats):
    env = dict(os.environ)
    env.pop("EMOTION_INVARIANT_MALLOC", None)
    here = os.path.dirname(os.path.abspath(__file__))
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD.format(here=here),
            str(batch),
            str(frozen),
            str(repeats),
            str(limit_mb),
        ],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--frozen", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--limits_mb",
        type=int,
        nargs="+",
        default=[256],
        help="keep_freed_memory's limits to compare (256: the recipes')",
    )
    args = parser.parse_args(argv)
    settings = {"default": 0}
    for mb in args.limits_mb:
        settings[f"keep_freed_memory, {mb} MB"] = mb
    runs = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, mb in settings.items():
            runs[name].append(_run(mb, args.batch, args.frozen, args.repeats))
    threads = runs["default"][0]["threads"]
    print(
        f"CPU, {threads} threads; published-size ECAPA-TDNN, "
        f"{args.frozen} stages frozen, batch {args.batch} + views"
    )
    print("| allocator | s / utterance | page faults | peak MB | ratio |")
    print("|---|---:|---:|---:|---:|")
    reference = statistics.median(r["seconds"] for r in runs["default"])
    for setting, results in runs.items():
        seconds = statistics.median(r["seconds"] for r in results)
        faults = statistics.median(r["faults"] for r in results)
        peak = max(r["peak_mb"] for r in results)
        print(
            f"| {setting} | {seconds:.4f} | {faults:,.0f} | {peak:,.0f} | "
            f"{seconds / reference:.2f} |"
        )


if __name__ == "__main__":
    main()
