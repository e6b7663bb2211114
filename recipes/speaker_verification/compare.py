#!/usr/bin/env python3
"""Compare speaker-verification systems per emotion condition, over runs.

Each system is ``NAME=RUN[,RUN...]``: output folders of ``train.py`` (one
per seed or fold), each holding ``eval/report.json``. The first system is the
reference: every other row shows its relative EER change against it. Prints
and writes (``--out``) markdown tables of EER and minDCF, mean and standard
deviation over runs, plus the reference's N-E / N-N EER ratio. Where every
run's trial list can be read and each run has a reference run scored on the
same trials (the same fold), a paired table follows: the EER difference
against the reference run on the same trials, mean and standard deviation
over the system's runs, and in how many runs it is lower. Paired
differences leave out the spread between folds, which on a few-speaker
corpus is larger than the differences between systems.

Example::

    python recipes/speaker_verification/compare.py --out comparison.md \\
        baseline=results/baseline/1,results/baseline/2 \\
        emotion-invariant=results/ei/1,results/ei/2
"""

import hashlib
import os
import statistics
import sys

from emotion_invariant.comparison import load_system, parse_spec
from emotion_invariant.comparison import main as compare_main

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
        values = [_value(r, cond, metric) for r in reports]
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


def trials_key(report, run):
    """The content hash of the trial list a report was scored on.

    Arguments
    ---------
    report : dict
        An evaluation report (``eval/report.json``).
    run : str
        The run folder, for the error.

    Returns
    -------
    str

    Example
    -------
    >>> trials_key({}, "results/sv/1")
    Traceback (most recent call last):
    ...
    ValueError: results/sv/1: the report names no trial list
    """
    path = report.get("trials")
    if not path:
        raise ValueError(f"{run}: the report names no trial list")
    if not os.path.isfile(path):
        raise ValueError(f"{run}: trial list {path} not found")
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def paired_table(systems, runs):
    """EER differences against the reference run on the same trials.

    Arguments
    ---------
    systems : list of (str, list of dict)
        Each system's name and reports; the first is the reference.
    runs : list of list of str
        Each system's run folders, in report order. A run pairs with the
        reference's run on the same trials; where the reference has several
        (seeds of one fold), the k-th run on those trials with the k-th.

    Returns
    -------
    str
        A markdown table, one row per system after the reference: each
        cell is the mean ± std over the system's runs of (its EER minus the
        reference's on the same trials), in points, and the number of runs
        where it is lower.

    Raises
    ------
    ValueError
        When a trial list cannot be read, or a run has no reference run on
        the same trials.
    """
    (ref_name, ref_reports), *others = systems
    by_trials = {}
    for report, run in zip(ref_reports, runs[0]):
        by_trials.setdefault(trials_key(report, run), []).append(report)
    conds = [
        c
        for c in ("all", *CONDITIONS)
        if all(
            c == "all" or c in r["conditions"]
            for _, reps in systems
            for r in reps
        )
    ]
    lines = [
        "| system | runs | " + " | ".join(conds) + " |",
        "|---|---:|" + "---:|" * len(conds),
    ]
    for (name, reports), folders in zip(others, runs[1:]):
        pairs, seen = [], {}
        for report, run in zip(reports, folders):
            key = trials_key(report, run)
            refs = by_trials.get(key, [])
            if not refs:
                raise ValueError(
                    f"{run}: no {ref_name} run scored on the same trials"
                )
            # One reference run on these trials (zero-shot): every run pairs
            # with it; several (seeds): the k-th with the k-th, in order.
            k = seen[key] = seen.get(key, -1) + 1
            if len(refs) > 1 and k >= len(refs):
                raise ValueError(
                    f"{run}: {name} has more runs on these trials than "
                    f"{ref_name} ({len(refs)}); give them in the same order"
                )
            pairs.append((report, refs[k if len(refs) > 1 else 0]))
        cells = []
        for cond in conds:
            diffs = [
                100 * (_value(report, cond, "eer") - _value(ref, cond, "eer"))
                for report, ref in pairs
            ]
            spread = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            lower = sum(d < 0 for d in diffs)
            # Adding 0.0 turns a -0.0 rounding into +0.00.
            mean = round(statistics.fmean(diffs), 2) + 0.0
            cells.append(f"{mean:+.2f} ± {spread:.2f} ({lower}/{len(diffs)})")
        lines.append(f"| {name} | {len(pairs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _value(report, cond, metric):
    """A report's ``metric`` for ``cond`` ("all": the overall figure)."""
    return (report["overall"] if cond == "all" else report["conditions"][cond])[
        metric
    ]


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
    if len(systems) > 1:
        runs = [parse_spec(spec)[1] for spec in specs]
        try:
            paired = paired_table(systems, runs)
        except ValueError as err:
            text += ["", f"No paired table: {err}."]
        else:
            text += [
                "",
                "Paired on the same trials: EER difference against "
                f"{ref_name} (points), mean ± std over runs; in brackets "
                f"the runs where the system is lower than {ref_name}.",
                "",
                paired,
            ]
    return "\n".join(text) + "\n"


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    return compare_main(compare, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
