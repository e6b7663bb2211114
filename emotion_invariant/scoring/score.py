"""Score a trial list from stored embeddings and report by emotion condition.

Command line::

    python -m emotion_invariant.scoring --embeddings E --trials T
        [--cohort C] [--norm none|z|t|s|as] [--topk K] [--subtract-mean]
        [--skip-missing] --out SCORES [--report REPORT.json]
        [--device cpu|cuda|cuda:N] [--title TITLE]

Writes ``enrol test label score`` lines (SpeechBrain's order) and, with
``--report``, REPORT.json, REPORT.md and REPORT_det.png. Everything is
checked before anything is written, so a bad input leaves no files, and an
output that would overwrite an input is refused before anything runs.
"""

import argparse
import logging
import os
import sys

import torch

from emotion_invariant.data.manifest import ManifestError
from emotion_invariant.scoring import (
    NORMS,
    build_report,
    drop_missing,
    load_embeddings,
    read_trials,
    score_trials,
    write_report,
    write_scores,
)
from emotion_invariant.scoring.errors import ScoringError
from emotion_invariant.scoring.report import report_paths

logger = logging.getLogger(__name__)


def score(
    embeddings,
    trials,
    out,
    cohort=None,
    norm="none",
    topk=300,
    skip_missing=False,
    report=None,
    device=None,
    subtract_mean=False,
    title=None,
):
    """Score ``trials`` with ``embeddings``; write scores and a report.

    Arguments
    ---------
    embeddings : str
        ``.npz``/``.pt`` embedding file.
    trials : str
        Trial list, ``label enrol test [condition]`` per line.
    out : str
        Score file to write.
    cohort : str, optional
        Cohort: a ``.csv`` manifest of ids in ``embeddings`` or an
        embedding file.
    norm : str
        ``none``, ``z``, ``t``, ``s`` or ``as``.
    topk : int
        Cohort size per utterance for ``as``.
    skip_missing : bool
        Drop trials naming ids not in ``embeddings`` instead of failing.
    report : str, optional
        JSON report path; markdown and DET PNG are written beside it.
    device : str, optional
        ``cpu`` or ``cuda`` (default: ``cuda`` when available).
    subtract_mean : bool
        Subtract the cohort's (or all embeddings') mean before scoring.
    title : str, optional
        Report title.

    Returns
    -------
    dict
        ``n_scored``, ``n_skipped`` and, with ``report``, ``report``.

    Example
    -------
    >>> import os, tempfile, torch
    >>> from emotion_invariant.scoring import save_embeddings
    >>> folder = tempfile.mkdtemp()
    >>> emb, tri = (os.path.join(folder, n) for n in ("e.npz", "t.txt"))
    >>> save_embeddings(emb, ["a", "b", "c"], torch.eye(3) + 0.1)
    >>> _ = open(tri, "w").write("1 a b\\n0 a c\\n0 a x\\n")
    >>> score(emb, tri, os.path.join(folder, "s.txt"), skip_missing=True)
    {'n_scored': 2, 'n_skipped': 1}
    """
    ids, matrix = load_embeddings(embeddings)
    trial_list = read_trials(trials)
    if report is not None and trial_list.labels.all():
        raise ManifestError(
            f"{trials}: all {len(trial_list)} trials are target trials; "
            "EER and minDCF need non-target trials too"
        )
    if report is not None and not trial_list.labels.any():
        raise ManifestError(
            f"{trials}: all {len(trial_list)} trials are non-target trials; "
            "EER and minDCF need target trials too"
        )
    warn_self_trials(trial_list, trials)
    skipped = 0
    if skip_missing:
        trial_list, skipped = drop_missing(trial_list, ids)
        if len(trial_list) == 0:
            raise ManifestError(
                f"{trials}: every trial names an id missing from {embeddings}"
            )
    scores = score_trials(
        (ids, matrix, embeddings),
        trial_list,
        norm=norm,
        cohort=cohort,
        topk=topk,
        device=device,
        subtract_mean=subtract_mean,
    )
    summary = {"n_scored": len(trial_list), "n_skipped": skipped}
    built = None
    if report is not None:
        built = build_report(trial_list, scores, title=title)
    write_scores(out, trial_list, scores)
    if built is not None:
        write_report(built, report)
        summary["report"] = built
    return summary


def warn_self_trials(trials, source):
    """Warn about trials that score an utterance against itself.

    Such a trial always scores 1, so it flatters the EER; it is scored (a
    warning, not an error: a sanity-check list may hold some on purpose).

    Arguments
    ---------
    trials : Trials
    source : str
        The trial list's name, for the message.

    Returns
    -------
    int
        How many trials have ``enrol == test``.

    Example
    -------
    >>> from emotion_invariant.scoring import Trials
    >>> warn_self_trials(Trials.from_records([(1, "a", "a"), (0, "a", "b")]),
    ...                  "t.txt")
    1
    """
    same = trials.enrol == trials.test
    count = int(same.sum())
    if count:
        first = int(same.argmax())
        logger.warning(
            "%s: %d trial(s) compare an utterance with itself (enrol == "
            "test, first on trial %d: %r); they score 1 and flatter the EER",
            source,
            count,
            first + 1,
            trials.names[trials.enrol[first]],
        )
    return count


def check_device(device):
    """A ``--device`` value as a torch device, refused where it cannot run.

    Arguments
    ---------
    device : str
        ``cpu``, ``cuda`` or ``cuda:N``.

    Returns
    -------
    torch.device

    Raises
    ------
    ScoringError
        For a string torch does not read as a device, another device type,
        or a GPU that is not visible; the message starts with the option.

    Example
    -------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu0")
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: --device gpu0: not a \
torch device; use cpu, cuda or cuda:N
    """
    usage = "use cpu, cuda or cuda:N"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ScoringError(
            f"--device {device}: not a torch device; {usage}"
        ) from None
    if parsed.type == "cpu":
        return parsed
    if parsed.type != "cuda":
        raise ScoringError(f"--device {device}: not supported here; {usage}")
    if not torch.cuda.is_available():
        raise ScoringError(f"--device {device}: no GPU is visible")
    count = torch.cuda.device_count()
    if parsed.index is not None and parsed.index >= count:
        raise ScoringError(
            f"--device {device}: {count} GPU(s) visible, cuda:0 to "
            f"cuda:{count - 1}"
        )
    return parsed


def check_outputs(outputs, inputs):
    """Refuse an output path that is an input, or another output.

    Paths are compared as real paths, so ``./e.npz``, a symbolic link or
    a ``..`` detour to an input are caught too.

    Arguments
    ---------
    outputs, inputs : dict
        Option (``--out``) -> path; None values are skipped.

    Raises
    ------
    ScoringError
        Naming both options and the path.

    Example
    -------
    >>> check_outputs({"--out": "./e.npz"}, {"--embeddings": "e.npz"})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: --out ./e.npz is e.npz, \
given as --embeddings: it would be overwritten; choose another path
    """
    seen = {
        os.path.realpath(path): (option, path)
        for option, path in inputs.items()
        if path is not None
    }
    for option, path in outputs.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            other, given = seen[real]
            raise ScoringError(
                f"{option} {path} is {given}, given as {other}: it would be "
                "overwritten; choose another path"
            )
        seen[real] = (option, path)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.scoring",
        description="Cosine-score a trial list from stored embeddings, with "
        "optional score normalisation and a per-condition report.",
    )
    parser.add_argument("--embeddings", required=True, help=".npz or .pt")
    parser.add_argument("--trials", required=True, help="trial list")
    parser.add_argument("--out", required=True, help="score file to write")
    parser.add_argument(
        "--cohort", help="cohort: .csv manifest of ids, or .npz/.pt file"
    )
    parser.add_argument("--norm", choices=NORMS, default="none")
    parser.add_argument(
        "--topk", type=int, default=300, help="cohort top-k for --norm as"
    )
    parser.add_argument(
        "--subtract-mean",
        action="store_true",
        help="subtract the cohort (or all embeddings') mean first",
    )
    parser.add_argument(
        "--skip-missing",
        action="store_true",
        help="drop trials naming ids not in the embeddings (and count them)",
    )
    parser.add_argument("--report", help="REPORT.json (also .md and PNG)")
    parser.add_argument(
        "--device", help="cpu, cuda or cuda:N (default: cuda if visible)"
    )
    parser.add_argument("--title", help="report title")
    args = parser.parse_args(argv)
    try:
        if args.device is not None:
            check_device(args.device)
        outputs = {"--out": args.out}
        if args.report is not None:
            md, png = report_paths(args.report)
            outputs["--report"] = args.report
            outputs["--report (markdown)"] = md
            outputs["--report (DET plot)"] = png
        inputs = {
            "--embeddings": args.embeddings,
            "--trials": args.trials,
            "--cohort": args.cohort,
        }
        check_outputs(outputs, inputs)
        summary = score(
            args.embeddings,
            args.trials,
            args.out,
            cohort=args.cohort,
            norm=args.norm,
            topk=args.topk,
            skip_missing=args.skip_missing,
            report=args.report,
            device=args.device,
            subtract_mean=args.subtract_mean,
            title=args.title,
        )
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"scored {summary['n_scored']} trials -> {args.out}")
    if summary["n_skipped"]:
        print(
            f"skipped {summary['n_skipped']} trials naming ids not in "
            f"{args.embeddings}"
        )
    if "report" in summary:
        overall = summary["report"]["overall"]
        print(
            f"EER {100 * overall['eer']:.2f}%  minDCF "
            f"{overall['min_dcf']:.4f} -> {args.report}"
        )
    return 0
