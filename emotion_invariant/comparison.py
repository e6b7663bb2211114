"""Side-by-side tables of systems over runs: what both recipes' compare
commands share.

A system is ``NAME=RUN[,RUN...]``: one output folder per seed (or fold),
each holding a JSON report. :func:`load_system` reads them,
:func:`main` is the command line around a task's own ``compare(specs)``:
it prints the markdown, writes it atomically with ``--out``, and turns a
bad input into one ``error:`` line.
"""

import argparse
import json
import os
import sys

from emotion_invariant.atomic import atomic_open


def parse_spec(spec):
    """``NAME=RUN[,RUN...]`` -> ``(name, [run, ...])``.

    Example
    -------
    >>> parse_spec("ei=results/1,results/2")
    ('ei', ['results/1', 'results/2'])
    >>> parse_spec("baseline")
    Traceback (most recent call last):
    ...
    ValueError: expected NAME=RUN[,RUN...], got 'baseline'
    """
    name, sep, runs = spec.partition("=")
    if not sep or not name or not runs:
        raise ValueError(f"expected NAME=RUN[,RUN...], got {spec!r}")
    return name, runs.split(",")


def load_system(spec, report="report.json", what="report", check=None):
    """``NAME=RUN[,RUN...]`` -> ``(name, reports)``.

    Arguments
    ---------
    spec : str
        The system's name and run folders.
    report : str
        The report's path inside each run folder; a run given as a
        ``.json`` file is that report itself (an evaluation's
        ``without_backend/report.json``).
    what : str
        What the report is, for the error when one is missing.
    check : callable, optional
        ``check(path, report)``, raising ``ValueError`` on a report the
        table cannot use.

    Returns
    -------
    tuple
        The name and the loaded reports, in run order.

    Example
    -------
    >>> load_system("baseline")
    Traceback (most recent call last):
    ...
    ValueError: expected NAME=RUN[,RUN...], got 'baseline'
    """
    name, runs = parse_spec(spec)
    reports = []
    for run in runs:
        path = run if run.endswith(".json") else os.path.join(run, report)
        if not os.path.isfile(path):
            raise ValueError(f"{name}: no {what} at {path}")
        with open(path) as f:
            reports.append(json.load(f))
        if check is not None:
            check(path, reports[-1])
    return name, reports


def main(compare, description, argv=None):
    """Command line of a compare script; returns the exit status.

    Arguments
    ---------
    compare : callable
        ``compare(specs)`` -> markdown text.
    description : str
        The command's one-line description.
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Example
    -------
    >>> main(lambda specs: " ".join(specs), "demo", ["a=1", "b=2"])
    a=1 b=2
    0
    >>> main(lambda specs: {}[specs[0]], "demo", ["a=1"])
    1
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("systems", nargs="+", help="NAME=RUN[,RUN...]")
    parser.add_argument("--out", help="markdown file to write")
    args = parser.parse_args(argv)
    try:
        text = compare(args.systems)
    except (ValueError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if args.out:
        with atomic_open(args.out) as f:
            f.write(text)
    print(text)
    return 0
