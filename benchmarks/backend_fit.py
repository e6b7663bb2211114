"""Fitting time of each scoring back-end on 10,000 embeddings.

Each member is fitted on 10,000 random 192-d embeddings of 200 speakers,
with the settings the back-end study uses at most, and its wall time is
printed with its ratio to a reference measured in the same run: one
``torch.linalg.svd`` of the same ``[10000, 192]`` matrix (the cost of a
plain PCA), so the ratios mean the same on any machine. The target is
10 s a member on 2 CPU cores.

    python benchmarks/backend_fit.py [--n 10000] [--speakers 200]
"""

import argparse
import time

import torch

from emotion_invariant.backend import fit

SETTINGS = {
    "emotion_nap": {"dims": 20},
    "within_speaker_nap": {"dims": 20},
    "wccn": {},
    "lda": {"dims": 150},
    "plda": {"rank": 100, "lda_dims": 150},
    "consistency": {"dims": 10},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--speakers", type=int, default=200)
    parser.add_argument("--dim", type=int, default=192)
    args = parser.parse_args(argv)
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(args.speakers, args.dim, generator=g)
    speakers = torch.arange(args.n) % args.speakers
    emb = centres[speakers] + 0.5 * torch.randn(args.n, args.dim, generator=g)
    emotions = [f"e{i % 7}" for i in range(args.n)]
    start = time.perf_counter()
    torch.linalg.svd(emb.double(), full_matrices=False)
    reference = time.perf_counter() - start
    print(
        f"{args.n} embeddings, {args.speakers} speakers, {args.dim}-d, "
        f"{torch.get_num_threads()} threads"
    )
    print(f"reference (one SVD): {reference:.3f} s")
    for kind, settings in SETTINGS.items():
        start = time.perf_counter()
        fit(kind, emb, speakers.tolist(), emotions, **settings)
        seconds = time.perf_counter() - start
        print(f"{kind:20s} {seconds:7.2f} s  {seconds / reference:8.1f}x")


if __name__ == "__main__":
    main()
