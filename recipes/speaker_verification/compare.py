#!/usr/bin/env python3
"""Compare speaker-verification systems per emotion condition, over runs.

Each system is ``NAME=RUN[,RUN...]``: output folders of ``train.py`` (one
per seed or fold), each holding ``eval/report.json``. The first system is the
reference: every other row shows its relative EER change against it. Prints
and writes (``--out``) markdown tables of EER and minDCF, mean and standard
deviation over runs, plus the reference's N-E / N-N EER ratio.

Example::

    python recipes/speaker_verification/compare.py --out comparison.md \\
        baseline=results/baseline/1,results/baseline/2 \\
        emotion-invariant=results/ei/1,results/ei/2
"""

import os
import statistics
import sys

from emotion_invariant.compare import load_system
from emotion_invariant.compare import main as compare_main

CONDITIONS = (
    "N-N",
    "N-E",
    "E-E same",
    "E-E cross",
    "neu-hap",
    "neu-ang",
    "neu-sad",
    "neu-sur",
    "neu-fea",
    "neu-dis",
    "neu-cal",
)


def summarize(reports, metric):
    """Condition -> (mean, std) of ``metric`` over the reports."""
    out = {}
    names = [
        c for c in CONDITIONS if all(c in r["conditions"] for r in reports)
    ]
    for cond in ["all", *names]:
        values = [
            (r["overall"] if cond == "all" else r["conditions"][cond])[metric]
            for r in reports
        ]
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        out[cond] = (statistics.fmean(values), spread)
    return out


def table(systems, metric, scale, digits, relative):
    """A markdown table: one row per system, one column per condition."""
    summaries = [(name, summarize(reps, metric)) for name, reps in systems]
    conds = [c for c in summaries[0][1] if all(c in s for _, s in summaries)]
    lines = [
        "| system | runs | " + " | ".join(conds) + " |",
        "|---|---:|" + "---:|" * len(conds),
    ]
    reference = summaries[0][1]
    for (name, summary), (_, reps) in zip(summaries, systems):
        cells = []
        for cond in conds:
            mean, std = summary[cond]
            cell = f"{scale * mean:.{digits}f} ± {scale * std:.{digits}f}"
            ref = reference[cond][0]
            if relative and summary is not reference and ref > 0:
                cell += f" ({100 * (mean - ref) / ref:+.1f}%)"
            cells.append(cell)
        lines.append(f"| {name} | {len(reps)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def compare(specs):
    """The comparison as markdown text."""
    report = os.path.join("eval", "report.json")
    systems = [load_system(spec, report, "evaluation report") for spec in specs]
    ref_name, ref_reports = systems[0]
    ref = summarize(ref_reports, "eer")
    text = [
        "EER (%), mean ± std over runs (seeds, folds); in brackets the "
        f"relative change against {ref_name}.",
        "",
        table(systems, "eer", 100, 2, True),
        "",
        "minDCF (p_target = 0.01), mean ± std over runs.",
        "",
        table(systems, "min_dcf", 1, 3, True),
    ]
    if ref.get("N-N", (0,))[0] > 0 and "N-E" in ref:
        ratio = ref["N-E"][0] / ref["N-N"][0]
        text += ["", f"{ref_name}: N-E EER / N-N EER = {ratio:.2f}"]
    return "\n".join(text) + "\n"


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    return compare_main(compare, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
