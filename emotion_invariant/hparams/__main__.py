"""Render the recipe files from their sources, or check they agree.

    python -m emotion_invariant.hparams render [--check] [--hparams DIR]

``render`` writes each ``hparams/<task>/X.yaml`` from
``hparams/<task>/sources/X.yaml`` (and removes a rendered file whose source
is gone); with ``--check`` it writes nothing and exits 1 naming the files
that differ from their sources' rendering.
"""

import argparse
import sys

from emotion_invariant.hparams.render import out_of_date, render
from emotion_invariant.hparams.rules import HparamsError
from emotion_invariant.messages import os_error_message


def main(argv=None):
    """The command line; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.hparams",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("command", choices=["render"])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a recipe file is out of date",
    )
    parser.add_argument(
        "--hparams",
        default="hparams",
        help="the hparams folder (default: hparams)",
    )
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = out_of_date(args.hparams)
            for path in stale:
                print(f"out of date: {path}", file=sys.stderr)
            if stale:
                print(
                    "error: the recipe files differ from their sources; "
                    "run `make hparams`",
                    file=sys.stderr,
                )
            return 1 if stale else 0
        written, removed = render(args.hparams)
    except HparamsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except OSError as err:
        print(f"error: {os_error_message(err)}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}")
    for path in removed:
        print(f"removed {path} (its source is gone)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
