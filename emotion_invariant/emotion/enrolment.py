"""Enrolment utterances: a few of each speaker's, drawn without labels.

Speaker normalisation at inference needs each test speaker's statistics
from utterances other than the ones scored. This draws ``per_speaker`` of
each speaker's utterances at random (seeded, and blind to their emotion)
and writes them as a manifest with the emotion columns emptied; the
emotion recipe (``--speaker_stats enrolment --enrol_manifest OUT``) takes
the test speakers' statistics from it and scores only their other
utterances. One file serves every fold: each run reads the rows of its
own test speakers.

Usage::

    python -m emotion_invariant.emotion.enrolment MANIFEST OUT \\
        [--per_speaker 20] [--seed 0]
"""

import argparse
import os
import sys

from emotion_invariant.data.manifest import (
    ManifestError,
    read_manifest,
    write_manifest,
)
from emotion_invariant.emotion.speaker_norm import reference_rows


def enrolment_rows(rows, per_speaker, seed=0):
    """Up to ``per_speaker`` rows of each speaker, their emotions emptied.

    The draw never reads an emotion; speakers with fewer rows give all of
    theirs.

    Example
    -------
    >>> rows = [{"ID": f"{s}{i}", "spk_id": s, "emo": "ang", "emo_raw": "A"}
    ...         for s in "ab" for i in range(4)]
    >>> chosen = enrolment_rows(rows, 2, seed=1)
    >>> len(chosen), sorted({r["spk_id"] for r in chosen}), chosen[0]["emo"]
    (4, ['a', 'b'], '')
    """
    chosen = reference_rows(rows, per_speaker=per_speaker, seed=seed)
    out = []
    for row, keep in zip(rows, chosen):
        if keep:
            row = dict(row, emo="")
            if "emo_raw" in row:
                row["emo_raw"] = ""
            out.append(row)
    return out


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.emotion.enrolment",
        description=__doc__.split("\n")[0],
    )
    parser.add_argument("manifest", help="the corpus manifest (CSV)")
    parser.add_argument("out", help="the enrolment manifest to write")
    parser.add_argument(
        "--per_speaker",
        type=int,
        default=20,
        help="enrolment utterances of each speaker (default 20)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        if args.per_speaker < 1:
            raise ManifestError(
                f"--per_speaker must be 1 or more, got {args.per_speaker}"
            )
        if os.path.realpath(args.out) == os.path.realpath(args.manifest):
            raise ManifestError(
                f"{args.out}: the input manifest; write the enrolment "
                "manifest elsewhere"
            )
        rows = read_manifest(args.manifest, allow_empty_emo=True)
        chosen = enrolment_rows(rows, args.per_speaker, args.seed)
        write_manifest(chosen, args.out)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    speakers = len({row["spk_id"] for row in chosen})
    print(f"{len(chosen)} utterances of {speakers} speakers -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
