"""Verification reports: JSON, a markdown table and a DET plot by condition.

Every figure is given overall and for each emotion condition group (see
:mod:`emotion_invariant.scoring.conditions`). minDCF and actDCF are
normalised (NIST SRE convention; at the defaults this is SpeechBrain's
``minDCF`` x 100). actDCF applies one threshold, the overall minDCF one
unless given, to every condition, so it shows how far emotion moves scores
away from a threshold set on the pooled trials.
"""

import json
import os

import torch
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from emotion_invariant.atomic import atomic_open, atomic_path
from emotion_invariant.scoring.conditions import (
    ALL,
    condition_masks,
    group_order,
)
from emotion_invariant.scoring.errors import ScoringError
from emotion_invariant.scoring.metrics import metrics_by_group
from emotion_invariant.scoring.trial_list import as_trials

DET_POINTS = 200
DET_TICKS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.6)


def report_paths(out_json):
    """The markdown and DET plot paths that go with a JSON report.

    Example
    -------
    >>> report_paths("results/report.json")
    ('results/report.md', 'results/report_det.png')
    """
    stem = os.path.splitext(os.fspath(out_json))[0]
    return stem + ".md", stem + "_det.png"


def build_report(
    trials,
    scores,
    title=None,
    p_target=0.01,
    c_miss=1.0,
    c_fa=1.0,
    threshold=None,
):
    """Compute the report: metrics overall and per condition, DET points.

    Arguments
    ---------
    trials : Trials or str or list of tuple
        The scored trial list (or its file, or its records).
    scores : torch.Tensor or array-like
        ``[T]`` scores aligned with ``trials``.
    title : str, optional
        Heading for the markdown and the plot.
    p_target, c_miss, c_fa : float
        DCF operating point.
    threshold : float, optional
        actDCF threshold for every condition; default: the overall minDCF
        threshold.

    Returns
    -------
    dict
        ``title``, ``trials``, ``n_trials``, ``dcf``, ``act_dcf_threshold``,
        ``overall`` and ``conditions`` (name -> metrics, report order), and
        ``det`` (name -> ``{"p_fa", "p_miss"}``).

    Example
    -------
    >>> from emotion_invariant.scoring.trial_list import Trials
    >>> trials = Trials.from_records([(1, "a", "b", "neu-neu"),
    ...                               (0, "a", "c", "neu-neu")])
    >>> build_report(trials, [0.9, 0.1])["overall"]["eer"]
    0.0
    """
    trials = as_trials(trials)
    scores = torch.as_tensor(scores).reshape(-1)
    if len(scores) != len(trials):
        raise ScoringError(
            f"{len(scores)} scores for {len(trials)} trials in {trials.source}"
        )
    masks = condition_masks(trials)
    labels = torch.from_numpy(trials.labels).to(scores.device)
    groups = metrics_by_group(
        scores,
        labels,
        masks,
        p_target=p_target,
        c_miss=c_miss,
        c_fa=c_fa,
        threshold=ALL if threshold is None else threshold,
        det_points=DET_POINTS,
    )
    det = {name: g.pop("det") for name, g in groups.items() if "det" in g}
    overall = groups.pop(ALL)
    return {
        "title": title,
        "trials": trials.source,
        "n_trials": len(trials),
        "dcf": {
            "p_target": p_target,
            "c_miss": c_miss,
            "c_fa": c_fa,
            "normalized": True,
        },
        "act_dcf_threshold": overall["act_dcf_threshold"],
        "overall": overall,
        "conditions": groups,
        "det": det,
    }


def _cell(value, scale=1.0, digits=4):
    return "n/a" if value is None else f"{value * scale:.{digits}f}"


def markdown_table(report):
    """The report as a markdown document with one row per condition.

    EER is in percent here (a fraction in the JSON).

    Example
    -------
    >>> from emotion_invariant.scoring.trial_list import Trials
    >>> trials = Trials.from_records([(1, "a", "b"), (0, "a", "c")])
    >>> print(markdown_table(build_report(trials, [0.9, 0.1])).splitlines()[-1])
    | all | 1 | 1 | 0.00 | 0.0000 | 0.0000 | 0.7831 |
    """
    dcf = report["dcf"]
    lines = [f"# {report['title'] or 'Speaker verification'}", ""]
    lines.append(
        f"{report['n_trials']} trials from `{report['trials']}`. minDCF and "
        f"actDCF at p_target={dcf['p_target']:g}, c_miss={dcf['c_miss']:g}, "
        f"c_fa={dcf['c_fa']:g}, normalised; actDCF for every condition at "
        f"threshold {report['act_dcf_threshold']:.6g}."
    )
    lines += [
        "",
        "| Condition | Targets | Non-targets | EER (%) | minDCF | actDCF "
        "| Cllr |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    rows = {ALL: report["overall"], **report["conditions"]}
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m['n_target']} | {m['n_nontarget']} | "
            f"{_cell(m['eer'], 100, 2)} | {_cell(m['min_dcf'])} | "
            f"{_cell(m['act_dcf'])} | {_cell(m['cllr'])} |"
        )
    return "\n".join(lines) + "\n"


def plot_det(det, path, title=None, metrics=None):
    """Draw DET curves (one per group) on normal-deviate axes to a PNG.

    Arguments
    ---------
    det : dict
        Group name -> ``{"p_fa": [...], "p_miss": [...]}``.
    path : str
        The PNG to write (atomically).
    title : str, optional
        Plot title.
    metrics : dict, optional
        Group name -> metrics with ``eer``, shown in the legend.

    Example
    -------
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "det.png")
    >>> plot_det({"all": {"p_fa": [1.0, 0.1, 0.0],
    ...                   "p_miss": [0.0, 0.2, 1.0]}}, path)
    >>> os.path.getsize(path) > 0
    True
    """
    probit = torch.special.ndtri
    lowest = 1.0
    for curve in det.values():
        for key in ("p_fa", "p_miss"):
            values = [v for v in curve[key] if v > 0]
            lowest = min([lowest, *values])
    ticks = [t for t in DET_TICKS if t >= min(lowest, 0.01) / 2]
    lo = float(probit(torch.tensor(ticks[0], dtype=torch.float64)))
    hi = float(probit(torch.tensor(ticks[-1], dtype=torch.float64)))

    fig = Figure(figsize=(8, 6))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    cmap = colormaps["tab10"]
    for index, (name, curve) in enumerate(det.items()):
        x = probit(torch.tensor(curve["p_fa"], dtype=torch.float64))
        y = probit(torch.tensor(curve["p_miss"], dtype=torch.float64))
        label = name
        if metrics and metrics.get(name, {}).get("eer") is not None:
            label = f"{name} (EER {100 * metrics[name]['eer']:.2f}%)"
        style = {
            "color": cmap(index % 10),
            "linestyle": ("-", "--", "-.")[index // 10 % 3],
            "linewidth": 1.2,
        }
        if name == ALL:
            style = {"color": "black", "linewidth": 2.2}
        ax.plot(
            x.clamp(lo - 1, hi + 1),
            y.clamp(lo - 1, hi + 1),
            label=label,
            **style,
        )
    positions = [
        float(probit(torch.tensor(t, dtype=torch.float64))) for t in ticks
    ]
    labels = [f"{100 * t:g}" for t in ticks]
    ax.set_xticks(positions, labels)
    ax.set_yticks(positions, labels)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("False alarm rate (%)")
    ax.set_ylabel("Miss rate (%)")
    ax.grid(True, linewidth=0.4, alpha=0.5)
    if title:
        ax.set_title(title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)


def _plotted(det):
    """The curves worth drawing: with summary groups present, all, the
    summary groups and ``neu-X`` (other pairs stay in the table); never
    the same curve twice (``neu-neu`` is ``N-N``)."""
    summary = any(group_order(name)[0] == 1 for name in det)
    chosen = {}
    for name, curve in det.items():
        if summary and group_order(name)[0] > 2:
            continue
        if curve not in chosen.values():
            chosen[name] = curve
    return chosen


def write_report(report, out_json):
    """Write a built report as JSON, markdown and a DET plot, atomically.

    Arguments
    ---------
    report : dict
        From :func:`build_report`.
    out_json : str
        The JSON path; the markdown and PNG go next to it (see
        :func:`report_paths`).

    Returns
    -------
    tuple of str
        The JSON, markdown and PNG paths.
    """
    md_path, png_path = report_paths(out_json)
    with atomic_open(out_json) as f:
        json.dump(report, f, indent=2, allow_nan=False)
        f.write("\n")
    with atomic_open(md_path) as f:
        f.write(markdown_table(report))
    metrics = {ALL: report["overall"], **report["conditions"]}
    plot_det(_plotted(report["det"]), png_path, report["title"], metrics)
    return os.fspath(out_json), md_path, png_path


def verification_report(trials, scores, out_json, title=None, **options):
    """Compute and write a verification report (JSON, markdown, DET PNG).

    Arguments
    ---------
    trials : Trials
        The scored trial list.
    scores : torch.Tensor or array-like
        ``[T]`` scores aligned with ``trials``.
    out_json : str
        Where the JSON goes; ``.md`` and ``_det.png`` files go beside it.
    title : str, optional
        Heading for the markdown and the plot.
    **options
        ``p_target``, ``c_miss``, ``c_fa``, ``threshold`` (see
        :func:`build_report`).

    Returns
    -------
    dict
        The report as written to JSON.

    Example
    -------
    >>> import os, tempfile
    >>> from emotion_invariant.scoring.trial_list import Trials
    >>> out = os.path.join(tempfile.mkdtemp(), "report.json")
    >>> trials = Trials.from_records([(1, "a", "b", "neu-ang"),
    ...                               (0, "a", "c", "neu-ang")])
    >>> report = verification_report(trials, [0.7, 0.2], out)
    >>> list(report["conditions"]), sorted(os.listdir(os.path.dirname(out)))
    (['N-E', 'neu-ang'], ['report.json', 'report.md', 'report_det.png'])
    """
    report = build_report(trials, scores, title, **options)
    write_report(report, out_json)
    return report
