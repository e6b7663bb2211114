#!/usr/bin/env python3
"""Speed of the audio check that every recipe runs before it starts.

Checks one manifest three ways and prints each time and its ratio against
the first, measured in the same run: without a cache (what every run does
by default: each file's header read and its audio read in full), with an
empty cache (the same reads, plus storing them), and with the cache filled
(one ``stat`` a file). Median of ``--repeats``.

    python benchmarks/audio_check.py [--manifest CSV --data_folder DIR]

Without ``--manifest``, ``--files`` random 16 kHz wavs of ``--seconds``
each are written to a temporary folder. The files are read once before
timing, so every variant reads from the page cache, not the disk.
"""

import argparse
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
import soundfile

from emotion_invariant.corpora.audio_check import check_manifest_audio
from emotion_invariant.data.manifest import write_manifest


def _fake(folder, files, seconds):
    rng = np.random.default_rng(0)
    rows = []
    for k in range(files):
        wav = os.path.join(folder, f"u{k}.wav")
        audio = 0.1 * rng.standard_normal(int(16000 * seconds))
        soundfile.write(wav, audio.astype(np.float32), 16000, "PCM_16")
        rows.append(
            {
                "ID": f"u{k}",
                "duration": seconds,
                "wav": f"$data_root/u{k}.wav",
                "spk_id": f"s{k % 10}",
                "emo": "neu",
            }
        )
    manifest = os.path.join(folder, "m.csv")
    write_manifest(rows, manifest)
    return manifest


def _time(manifest, data_folder, cache):
    start = time.perf_counter()
    check_manifest_audio(manifest, data_folder, 0.1, cache=cache)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest")
    parser.add_argument("--data_folder")
    parser.add_argument("--files", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = tempfile.mkdtemp()
    try:
        manifest, data_folder = args.manifest, args.data_folder
        if manifest is None:
            data_folder = work
            manifest = _fake(work, args.files, args.seconds)
        _time(manifest, data_folder, None)  # warm the page cache
        times = {"no cache": [], "empty cache": [], "filled cache": []}
        for k in range(args.repeats):
            cache = os.path.join(work, f"cache{k}")
            times["no cache"].append(_time(manifest, data_folder, None))
            times["empty cache"].append(_time(manifest, data_folder, cache))
            times["filled cache"].append(_time(manifest, data_folder, cache))
        reference = statistics.median(times["no cache"])
        print(f"{manifest}")
        print("| check | seconds | ratio |")
        print("|---|---:|---:|")
        for name, values in times.items():
            median = statistics.median(values)
            print(f"| {name} | {median:.3f} | {median / reference:.3f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
