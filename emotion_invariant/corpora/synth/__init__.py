"""The embedded demo corpus: synthetic emotional speech from espeak-ng.

Pseudo-speakers and emotion styles (:mod:`.voices`) are spoken by
espeak-ng and shaped per emotion (:mod:`.audio`); sentences are parallel
across emotions, like ESD. This module synthesizes a corpus and summarises
it (:mod:`.summary`); :mod:`.prepare` turns it into manifests and trials.
The corpus is synthetic: it exists to run, test and compare the recipes
offline, not to report results comparable with real corpora.

Command line::

    python -m emotion_invariant.corpora.synth --out DIR [--speakers N]
        [--utterances N] [--emotions neu hap ang sad] [--seed S] [--jobs J]
"""

import argparse
import json
import os
import sys
import tempfile
from multiprocessing import get_context

from tqdm import tqdm

from emotion_invariant.atomic import atomic_open
from emotion_invariant.corpora.synth.audio import (
    SAMPLE_RATE,
    espeak_data_dir,
    estimate_f0,
    init_worker,
    synthesize,
)
from emotion_invariant.corpora.synth.prepare import prepare_synth
from emotion_invariant.corpora.synth.summary import (
    summarize,
    summary_markdown,
)
from emotion_invariant.corpora.synth.voices import (
    BASE_VOICES,
    DEFAULT_EMOTIONS,
    EMOTION_STYLES,
    SENTENCES,
    SynthError,
    draw_speakers,
    split_speakers,
)
from emotion_invariant.data.manifest import ManifestError, write_manifest
from emotion_invariant.messages import os_error_message

__all__ = [
    "BASE_VOICES",
    "DEFAULT_EMOTIONS",
    "EMOTION_STYLES",
    "SAMPLE_RATE",
    "SENTENCES",
    "SynthError",
    "draw_speakers",
    "espeak_data_dir",
    "estimate_f0",
    "main",
    "prepare_synth",
    "split_speakers",
    "summarize",
    "summary_markdown",
    "synthesize_corpus",
]


def synthesize_corpus(
    out,
    speakers=160,
    utterances=10,
    emotions=DEFAULT_EMOTIONS,
    seed=0,
    jobs=None,
):
    """Synthesize the demo corpus into ``out``.

    Writes ``out/wavs/<spk>/<ID>.wav`` (16 kHz mono), the manifest
    ``out/synth.csv`` (``wav`` relative to ``$data_root`` = ``out``),
    ``out/splits.json`` (speaker-disjoint train/dev/test) and the summary
    ``out/summary.json`` and ``out/summary.md``. Deterministic from the seed,
    whatever the number of jobs.

    Arguments
    ---------
    out : str
        Output folder.
    speakers : int
        Number of pseudo-speakers.
    utterances : int
        Sentences per speaker and emotion (the same sentences in every
        emotion).
    emotions : sequence of str
        Emotions to synthesize, from :data:`EMOTION_STYLES`; must include
        ``neu``.
    seed : int
        Random seed.
    jobs : int, optional
        Worker processes (default: all cores).

    Returns
    -------
    dict
        The summary (also written to ``summary.json``).
    """
    emotions = list(dict.fromkeys(emotions))
    unknown = [e for e in emotions if e not in EMOTION_STYLES]
    if unknown:
        raise SynthError(
            f"unknown emotion(s) {' '.join(unknown)}; available: "
            + " ".join(EMOTION_STYLES)
        )
    if "neu" not in emotions:
        raise SynthError("the emotions must include 'neu' (the reference)")
    if not 1 <= utterances <= len(SENTENCES):
        raise SynthError(f"--utterances must be in 1..{len(SENTENCES)}")
    if speakers < 3:
        raise SynthError("--speakers must be at least 3 (train, dev, test)")
    data_dir = espeak_data_dir()
    options = {
        "speakers": speakers,
        "utterances": utterances,
        "emotions": emotions,
        "seed": seed,
    }
    done = _finished_summary(out, options)
    if done is not None:
        return done
    spk_list = draw_speakers(speakers, seed)
    splits = split_speakers(spk_list, seed)
    jobs_list = [
        (spk, emo, k, seed, out)
        for spk in spk_list
        for emo in emotions
        for k in range(utterances)
    ]
    jobs = jobs or os.cpu_count() or 1
    os.makedirs(out, exist_ok=True)
    results = []
    ctx = get_context("fork" if sys.platform != "win32" else "spawn")
    # Each worker's espeak-ng folder lives under one scratch folder that this
    # process removes, however the workers end.
    with tempfile.TemporaryDirectory(prefix="espeak-") as scratch:
        init = (data_dir, scratch)
        with ctx.Pool(jobs, initializer=init_worker, initargs=init) as pool:
            for result in tqdm(
                pool.imap(synthesize, jobs_list, chunksize=16),
                total=len(jobs_list),
                desc="synthesizing",
                unit="utt",
                disable=None,
            ):
                results.append(result)
    rows = [r for r, _ in results]
    split_of = {s: name for name, ids in splits.items() for s in ids}
    for row in rows:
        row["split"] = split_of[row["spk_id"]]
    summary = summarize(rows, [s for _, s in results], splits)
    write_manifest(rows, os.path.join(out, "synth.csv"))
    with atomic_open(os.path.join(out, "splits.json")) as f:
        json.dump(splits, f, indent=1)
    with atomic_open(os.path.join(out, "speakers.json")) as f:
        json.dump(spk_list, f, indent=1)
    with atomic_open(os.path.join(out, "summary.json")) as f:
        json.dump(summary, f, indent=1)
    with atomic_open(os.path.join(out, "summary.md")) as f:
        f.write(summary_markdown(summary))
    # Written last: its presence means the corpus is complete.
    with atomic_open(os.path.join(out, "synth_options.json")) as f:
        json.dump(options, f)
    return summary


def _finished_summary(out, options):
    """The summary of a complete corpus made with ``options``, else None."""
    try:
        with open(os.path.join(out, "synth_options.json")) as f:
            if json.load(f) != options:
                return None
        with open(os.path.join(out, "summary.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.corpora.synth",
        description="Synthesize the emotional demo corpus with espeak-ng.",
    )
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--speakers", type=int, default=160)
    parser.add_argument(
        "--utterances", type=int, default=10, help="sentences per emotion"
    )
    parser.add_argument(
        "--emotions",
        nargs="+",
        default=list(DEFAULT_EMOTIONS),
        help=f"from: {' '.join(EMOTION_STYLES)}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        summary = synthesize_corpus(
            args.out,
            args.speakers,
            args.utterances,
            args.emotions,
            args.seed,
            args.jobs,
        )
    except (SynthError, ManifestError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(
            f"error: cannot write the corpus in {args.out}: "
            + os_error_message(err),
            file=sys.stderr,
        )
        return 2
    print(summary_markdown(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
