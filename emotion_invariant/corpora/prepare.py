"""One command from a downloaded corpus to manifest, folds, splits, trials.

Dispatches to each corpus's SpeechBrain-style ``prepare_<corpus>`` function
(imported only when asked for), which skips work already done and is safe
under ``run_on_main``.

Command line::

    python -m emotion_invariant.corpora.prepare CORPUS DATA_DIR SAVE_DIR
        [--seed S] [--skip-bad] [--jobs J] [--split MODE] ...
"""

import argparse
import importlib
import inspect
import logging
import sys

#: The corpora, each prepared by ``prepare_<corpus>`` of the module
#: ``emotion_invariant.corpora.<corpus>``.
CORPORA = (
    "synth",
    "esd",
    "cremad",
    "ravdess",
    "emodb",
    "iemocap",
    "dusha",
    "msppodcast",
    "voxceleb",
)

# (flags, argparse keywords); every option's default is "not given", so
# each corpus function keeps its own defaults.
_OPTIONS = (
    (("--seed",), dict(type=int, help="seed of folds, splits and trials")),
    (
        ("--skip-bad",),
        dict(
            action="store_true",
            help="skip (and count) bad files instead of stopping",
        ),
    ),
    (("--jobs",), dict(type=int, help="threads reading audio headers")),
    (("--held-out",), dict(type=int, help="speakers per fold")),
    (("--test-fraction",), dict(type=float, help="fraction of test speakers")),
    (("--dev-fraction",), dict(type=float, help="fraction of dev speakers")),
    (
        ("--max-per-condition",),
        dict(type=int, help="cap on target/non-target trials per condition"),
    ),
    (
        ("--split",),
        dict(
            choices=("speakers", "official", "videos"),
            help="speakers (default), official (esd, dusha, msppodcast), "
            "videos (voxceleb default)",
        ),
    ),
    (
        ("--all-emotions",),
        dict(
            dest="four_class",
            action="store_false",
            help="iemocap: keep every labelled class, not only neu hap ang sad",
        ),
    ),
    (
        ("--no-merge-excited",),
        dict(
            dest="merge_excited",
            action="store_false",
            help="iemocap: do not count excited as happy",
        ),
    ),
    (("--test-session",), dict(type=int, help="iemocap: test session")),
    (("--dev-session",), dict(type=int, help="iemocap: dev session")),
    (
        ("--label",),
        dict(
            choices=("annotators", "speaker"),
            help="dusha: annotators' label (default) or the acted one",
        ),
    ),
)


def preparer(corpus):
    """The ``prepare_<corpus>`` function of a corpus, imported on demand.

    Arguments
    ---------
    corpus : str
        One of :data:`CORPORA`.

    Returns
    -------
    callable
        ``prepare_<corpus>(data_folder, save_folder, **options)``.

    Example
    -------
    >>> preparer("emodb").__name__
    'prepare_emodb'
    >>> preparer("timit")
    Traceback (most recent call last):
    ...
    ValueError: unknown corpus 'timit'; expected one of synth esd cremad \
ravdess emodb iemocap dusha msppodcast voxceleb
    """
    if corpus not in CORPORA:
        raise ValueError(
            f"unknown corpus {corpus!r}; expected one of " + " ".join(CORPORA)
        )
    module = importlib.import_module(f"emotion_invariant.corpora.{corpus}")
    return getattr(module, f"prepare_{corpus}")


def options_of(corpus):
    """Names of the options a corpus's preparation accepts.

    Example
    -------
    >>> "label" in options_of("dusha"), "label" in options_of("esd")
    (True, False)
    """
    params = inspect.signature(preparer(corpus)).parameters
    return [p for p in params if p not in ("data_folder", "save_folder")]


def prepare(corpus, data_folder, save_folder, **options):
    """Prepare a corpus: manifest, folds, splits and trial list.

    Arguments
    ---------
    corpus : str
        One of :data:`CORPORA`.
    data_folder : str
        The corpus as downloaded (its root folder).
    save_folder : str
        Where ``<corpus>.csv`` and the rest go.
    **options
        Options of that corpus's ``prepare_<corpus>`` function.

    Returns
    -------
    dict or None
        Role -> path of each output (``None`` for ``synth``).

    Example
    -------
    >>> prepare("esd", "/data/esd", "/tmp/out", label="speaker")
    Traceback (most recent call last):
    ...
    ValueError: option(s) label do not apply to esd; its options: split, \
seed, held_out, test_fraction, dev_fraction, max_per_condition, skip_bad, jobs
    """
    valid = options_of(corpus)
    unknown = [k for k in options if k not in valid]
    if unknown:
        raise ValueError(
            f"option(s) {', '.join(unknown)} do not apply to {corpus}; "
            f"its options: {', '.join(valid)}"
        )
    return preparer(corpus)(data_folder, save_folder, **options)


def main(argv=None):
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.corpora.prepare",
        description="Prepare a downloaded corpus: manifest, speaker folds, "
        "splits and emotional trial list.",
        argument_default=argparse.SUPPRESS,
    )
    parser.add_argument("corpus", choices=CORPORA)
    parser.add_argument("data_folder", metavar="DATA_DIR")
    parser.add_argument("save_folder", metavar="SAVE_DIR")
    flag_of = {}
    for flags, kwargs in _OPTIONS:
        action = parser.add_argument(*flags, **kwargs)
        flag_of[action.dest] = flags[0]
    args = vars(parser.parse_args(argv))
    corpus = args.pop("corpus")
    data_folder = args.pop("data_folder")
    save_folder = args.pop("save_folder")
    valid = options_of(corpus)
    unknown = [flag_of[k] for k in args if k not in valid]
    if unknown:
        parser.error(
            f"{', '.join(unknown)} does not apply to {corpus}; its options: "
            + ", ".join(flag_of[k] for k in valid if k in flag_of)
        )
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        outputs = prepare(corpus, data_folder, save_folder, **args)
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not outputs:
        print(f"prepared {corpus} in {save_folder}")
    for role, path in (outputs or {}).items():
        print(f"{role:9s} {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
