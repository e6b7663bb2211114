"""One fold's files on disk: the manifests and trials a run on it reads.

A run on fold K of a corpus tests on the fold's speakers and trains and
selects checkpoints on the others (:mod:`emotion_invariant.data.folds`
draws them); these functions write what it reads and say where.
"""

import os

from emotion_invariant.data.folds import (
    ROLES,
    check_speaker_independent,
    fold_of_speakers,
    fold_split,
    group_by,
    verification_split,
)
from emotion_invariant.data.manifest import read_manifest, write_manifest
from emotion_invariant.data.trials import make_trials, write_trials


def write_fold(
    source,
    fold,
    out_folder,
    n_folds=5,
    seed=0,
    dev_fraction=0.15,
    max_per_condition=None,
):
    """Write one fold's manifests and its test speakers' trial list.

    The fold's speakers are the test set, a gender-balanced draw of at
    least two of the others the dev set, the rest the training set (see
    :func:`verification_split`); ``train.csv``, ``dev.csv``, ``test.csv``
    and ``trials.txt`` (emotional trials of the test speakers) go to
    ``out_folder``, each written atomically.

    Arguments
    ---------
    source : str
        The corpus's full manifest (its ``fold`` column, else ``n_folds``
        folds drawn with ``seed``).
    fold : str
        The test fold.
    out_folder : str
        Where the four files go.
    n_folds, seed, dev_fraction
        As :func:`fold_of_speakers` and :func:`verification_split` take
        them.
    max_per_condition : int, optional
        Cap on target and non-target trials per condition.

    Returns
    -------
    dict
        ``train``, ``dev``, ``test``, ``trials`` -> path.

    Example
    -------
    >>> import os, tempfile
    >>> from emotion_invariant.data.manifest import write_manifest
    >>> rows = [{"ID": f"{s}{e}{i}", "duration": 1.0, "wav": f"{s}{e}{i}.wav",
    ...          "spk_id": s, "emo": e, "fold": f}
    ...         for s, f in zip("abcdef", "112233")
    ...         for e in ("neu", "ang") for i in range(2)]
    >>> d = tempfile.mkdtemp()
    >>> write_manifest(rows, os.path.join(d, "all.csv"))
    >>> out = write_fold(os.path.join(d, "all.csv"), "3", d)
    >>> from emotion_invariant.data.manifest import read_manifest
    >>> sorted({r["spk_id"] for r in read_manifest(out["test"])})
    ['e', 'f']
    """
    rows = read_manifest(source)
    fold_of = fold_of_speakers(rows, n_folds, seed, source)
    parts = verification_split(rows, fold_of, fold, dev_fraction, seed, source)
    check_speaker_independent(parts)
    os.makedirs(out_folder, exist_ok=True)
    paths = {
        name: os.path.join(out_folder, f"{name}.csv")
        for name in ("train", "dev", "test")
    }
    paths["trials"] = os.path.join(out_folder, "trials.txt")
    trials = make_trials(parts["test"], seed, max_per_condition)
    for name in ("train", "dev", "test"):
        write_manifest(parts[name], paths[name])
    write_trials(trials, paths["trials"])
    return paths


def fold_run(output_folder, fold):
    """Where one fold's run and manifests live, as hyperparameter overrides.

    Example
    -------
    >>> run = fold_run("out", "2")
    >>> run["run_folder"], run["valid_annotation"]
    ('out/fold_2', 'out/fold_2/manifests/dev.csv')
    """
    run = os.path.join(output_folder, f"fold_{fold}")
    folder = os.path.join(run, "manifests")
    return {
        "fold": fold,
        "run_folder": run,
        **{
            f"{key}_annotation": os.path.join(folder, f"{name}.csv")
            for name, key in ROLES.items()
        },
    }


def write_fold_manifests(hparams, fold):
    """Write one fold's train, dev and test manifests.

    Arguments
    ---------
    hparams : dict
        ``full_annotation`` (the corpus manifest), ``n_folds``,
        ``fold_seed``, ``fold_dev_fraction`` and the ``<key>_annotation``
        paths of :data:`ROLES` to write.
    fold : str
        The test fold.
    """
    source = hparams["full_annotation"]
    rows = read_manifest(source)
    fold_of = fold_of_speakers(
        rows, hparams["n_folds"], hparams["fold_seed"], source
    )
    parts = fold_split(
        rows,
        fold_of,
        fold,
        hparams["fold_dev_fraction"],
        hparams["fold_seed"],
        source,
    )
    for name, key in ROLES.items():
        write_manifest(parts[name], hparams[f"{key}_annotation"])


def fold_labels(source, n_folds=5, seed=0):
    """The folds of a corpus manifest, in order (what ``fold: all`` runs).

    Example
    -------
    >>> import os, tempfile
    >>> from emotion_invariant.data.manifest import write_manifest
    >>> rows = [{"ID": f"{s}{i}", "duration": 1.0, "wav": f"{s}{i}.wav",
    ...          "spk_id": s, "emo": "neu", "fold": f}
    ...         for s, f in zip("abcd", "1122") for i in range(2)]
    >>> path = os.path.join(tempfile.mkdtemp(), "all.csv")
    >>> write_manifest(rows, path)
    >>> fold_labels(path)
    ['1', '2']
    """
    rows = read_manifest(source)
    return list(group_by(fold_of_speakers(rows, n_folds, seed, source)))
