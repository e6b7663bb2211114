"""The summary of a demo corpus: sizes, F0 and speaking rate per emotion."""

from collections import defaultdict

import numpy as np


def summarize(rows, stats, splits):
    """Corpus summary: sizes per split and emotion, F0 and rate per emotion.

    The per-speaker F0 shift is each speaker's mean F0 in an emotion over its
    neutral mean F0, averaged over speakers.
    """
    per_emo = defaultdict(list)
    per_spk_emo = defaultdict(list)
    for row, st in zip(rows, stats):
        per_emo[row["emo"]].append(st)
        per_spk_emo[row["spk_id"], row["emo"]].append(st["f0"])
    speakers = sorted({r["spk_id"] for r in rows})
    durations = np.array([s["duration"] for s in stats])
    summary = {
        "speakers": len(speakers),
        "utterances": len(rows),
        "hours": float(durations.sum() / 3600),
        "duration_min": float(durations.min()),
        "duration_max": float(durations.max()),
        "clipped": int(sum(s["peak"] >= 0.999 for s in stats)),
        "silent": int(sum(s["rms_db"] < -60 for s in stats)),
        "splits": {
            name: {
                "speakers": len(ids),
                "utterances": sum(r["spk_id"] in set(ids) for r in rows),
            }
            for name, ids in splits.items()
        },
        "emotions": {},
    }
    for emo, sts in per_emo.items():
        shifts = [
            np.nanmean(per_spk_emo[s, emo]) / np.nanmean(per_spk_emo[s, "neu"])
            for s in speakers
            if (s, emo) in per_spk_emo and (s, "neu") in per_spk_emo
        ]
        summary["emotions"][emo] = {
            "utterances": len(sts),
            "hours": float(sum(s["duration"] for s in sts) / 3600),
            "f0_mean_hz": float(np.nanmean([s["f0"] for s in sts])),
            "f0_vs_neutral": float(np.nanmean(shifts)),
            "words_per_s": float(np.mean([s["words_per_s"] for s in sts])),
            "rms_db": float(np.mean([s["rms_db"] for s in sts])),
        }
    return summary


def summary_markdown(summary):
    """The corpus summary as markdown tables.

    Example
    -------
    >>> s = {"speakers": 2, "utterances": 4, "hours": 0.01, "clipped": 0,
    ...      "silent": 0, "duration_min": 1.2, "duration_max": 2.5,
    ...      "splits": {"train": {"speakers": 2, "utterances": 4}},
    ...      "emotions": {"neu": {"utterances": 4, "hours": 0.01,
    ...      "f0_mean_hz": 150.0, "f0_vs_neutral": 1.0, "words_per_s": 3.0,
    ...      "rms_db": -23.0}}}
    >>> print(summary_markdown(s).splitlines()[0])
    Synthetic demo corpus: 2 speakers, 4 utterances, 0.01 h.
    """
    lines = [
        f"Synthetic demo corpus: {summary['speakers']} speakers, "
        f"{summary['utterances']} utterances, {summary['hours']:.2f} h.",
        f"Durations {summary['duration_min']:.2f}-"
        f"{summary['duration_max']:.2f} s, {summary['clipped']} clipped, "
        f"{summary['silent']} silent.",
        "",
        "| split | speakers | utterances |",
        "|---|---:|---:|",
    ]
    for name, s in summary["splits"].items():
        lines.append(f"| {name} | {s['speakers']} | {s['utterances']} |")
    lines += [
        "",
        "| emotion | utterances | hours | mean F0 (Hz) | F0 / neutral "
        "(per speaker) | words/s | RMS (dBFS) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for emo, s in summary["emotions"].items():
        lines.append(
            f"| {emo} | {s['utterances']} | {s['hours']:.2f} | "
            f"{s['f0_mean_hz']:.0f} | {s['f0_vs_neutral']:.2f} | "
            f"{s['words_per_s']:.2f} | {s['rms_db']:.1f} |"
        )
    return "\n".join(lines) + "\n"
