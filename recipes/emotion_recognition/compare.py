#!/usr/bin/env python3
"""Compare emotion recognition systems over seeds: mean and spread.

Each system is ``NAME=RUN[,RUN...]``: output folders of ``train.py`` (one
per seed), each holding the summary ``report.json`` (over the speaker split
or over folds). A seed's score is its mean over folds; the table shows the
mean and standard deviation of those over seeds, and every system's change
against the first one in percentage points. Runs of one fold each (``--fold
K``, one folder per fold and seed, as the real-speech suite writes them)
are pooled instead: mean and standard deviation over all of them. The
speaker probe's accuracy sits beside its chance level: the lower above
chance, the less speaker identity the emotion embedding carries.

Example::

    python recipes/emotion_recognition/compare.py --out comparison.md \\
        baseline=results/ser/baseline/1,results/ser/baseline/2 \\
        adversarial=results/ser/adversarial/1,results/ser/adversarial/2
"""

import sys

from emotion_invariant.comparison import load_system as read_system
from emotion_invariant.comparison import main as compare_main
from emotion_invariant.emotion.metrics import mean_spread

COLUMNS = (
    ("ua", "UA"),
    ("wa", "WA"),
    ("macro_f1", "macro-F1"),
    ("probe_accuracy", "probe acc."),
    ("probe_chance", "probe chance"),
    ("uncentred_ua", "UA LR"),
    ("centred_ua", "UA LR centred"),
)


def _folds(report):
    return report["mode"], tuple(report["runs"])


def _per_fold(reports):
    """Whether each run is one fold (and together they cover several)."""
    return len({_folds(r) for r in reports}) > 1 and all(
        r["mode"] == "folds" and len(r["runs"]) == 1 for r in reports
    )


def coverage(reports):
    """The mode and folds a system's runs are evaluated on.

    Example
    -------
    >>> one = {"mode": "folds", "runs": {"1": {}}}
    >>> two = {"mode": "folds", "runs": {"2": {}}}
    >>> coverage([one, two, one])
    ('folds', ('1', '2'))
    >>> coverage([{"mode": "split", "runs": {"split": {}}}])
    ('split', ('split',))
    """
    if _per_fold(reports):
        return "folds", tuple(sorted({f for r in reports for f in r["runs"]}))
    return _folds(reports[0])


def _check_summary(path, report):
    if "summary" not in report:
        raise ValueError(f"{path} is not a summary of train.py")


def load_system(spec):
    """``NAME=DIR[,DIR...]`` -> (name, list of summary reports) over the
    same folds.

    Example
    -------
    >>> load_system("baseline")
    Traceback (most recent call last):
    ...
    ValueError: expected NAME=RUN[,RUN...], got 'baseline'
    """
    name, reports = read_system(
        spec, what="summary report", check=_check_summary
    )
    modes = {_folds(r) for r in reports}
    if len(modes) > 1 and not _per_fold(reports):
        raise ValueError(
            f"{name}: its runs are not over the same folds: {sorted(modes)}"
        )
    return name, reports


def summarize(reports):
    """Metric -> mean and spread over seeds of each seed's fold mean.

    Example
    -------
    >>> reports = [{"summary": {k: {"mean": v} for k, _ in COLUMNS}}
    ...            for v in (0.5, 1.0)]
    >>> summarize(reports)["ua"]
    {'mean': 0.75, 'std': 0.3535533905932738, 'min': 0.5, 'max': 1.0, 'n': 2}
    """
    return {
        key: mean_spread(
            [r["summary"].get(key, {}).get("mean") for r in reports]
        )
        for key, _ in COLUMNS
    }


def _cell(stats):
    if stats["mean"] is None:
        return "-"
    return f"{100 * stats['mean']:.1f} ± {100 * stats['std']:.1f}"


def compare(specs):
    """The comparison as markdown text.

    Arguments
    ---------
    specs : list of str
        ``NAME=RUN[,RUN...]``, the reference first.

    Returns
    -------
    str
    """
    systems = [load_system(spec) for spec in specs]
    folds = {name: coverage(reports) for name, reports in systems}
    if len(set(folds.values())) > 1:
        raise ValueError(
            "the systems are not evaluated on the same folds: "
            + "; ".join(
                f"{n}: {m} {' '.join(r)}" for n, (m, r) in folds.items()
            )
        )
    summaries = [(name, summarize(reports)) for name, reports in systems]
    ref_name, reference = summaries[0]
    mode, covered = folds[ref_name]
    if _per_fold(systems[0][1]):
        scope, unit = f"folds {', '.join(covered)}, one run per fold", "runs"
        spread = "runs (folds and seeds)"
    else:
        scope, unit = f"{mode}, {len(covered)} run(s) per seed", "seeds"
        spread = "seeds"
    # A column no system has (the backends are optional) is left out.
    columns = [
        (key, title)
        for key, title in COLUMNS
        if any(summary[key]["n"] for _, summary in summaries)
    ]
    lines = [
        f"Speaker-independent emotion recognition ({scope}): % , mean ± "
        f"std over {spread}; in brackets the change against {ref_name} in "
        "points.",
        "",
        f"| system | {unit} | " + " | ".join(n for _, n in columns) + " |",
        "|---|---:|" + "---:|" * len(columns),
    ]
    for (name, summary), (_, reports) in zip(summaries, systems):
        cells = []
        for key, _ in columns:
            cell = _cell(summary[key])
            mean, ref = summary[key]["mean"], reference[key]["mean"]
            if name != ref_name and None not in (mean, ref):
                cell += f" ({100 * (mean - ref):+.1f})"
            cells.append(cell)
        lines.append(f"| {name} | {len(reports)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    return compare_main(compare, __doc__.split("\n")[0], argv)


if __name__ == "__main__":
    sys.exit(main())
