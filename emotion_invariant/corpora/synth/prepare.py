"""Manifests, splits and trials of a synthesized corpus (``prepare synth``)."""

import json
import logging
import os

from emotion_invariant.atomic import atomic_open, staged_files
from emotion_invariant.corpora.record import already_prepared, corpus_content
from emotion_invariant.data.manifest import (
    ManifestError,
    read_manifest,
    read_splits,
    write_manifest,
)
from emotion_invariant.data.trials import make_trials, write_trials

logger = logging.getLogger(__name__)


def prepare_synth(data_folder, save_folder, seed=0, max_per_condition=None):
    """Manifests, splits and trials for a synthesized corpus (``prepare``).

    Reads ``data_folder/synth.csv`` and ``splits.json`` written by
    :func:`synthesize_corpus`, checks them, and writes ``synth.csv``,
    ``synth_train.csv``, ``synth_dev.csv``, ``synth_test.csv`` and
    ``synth_trials.txt`` (from the test speakers, when there are two or
    more) into ``save_folder``, all together or, when anything fails, none
    of them. Skips the work when a run with the same options, from the same
    folder holding the same files, finished.

    Arguments
    ---------
    data_folder : str
        The corpus folder (``--out`` of the synthesizer).
    save_folder : str
        Where manifests and trials go.
    seed : int
        Seed of the trial list.
    max_per_condition : int, optional
        Cap on target (and non-target) trials per condition.
    """
    manifest = os.path.join(data_folder, "synth.csv")
    if not os.path.isfile(manifest):
        raise ManifestError(
            f"{data_folder} is not a synthesized corpus: no synth.csv there "
            "(create one with "
            "`python -m emotion_invariant.corpora.synth --out DIR`)"
        )
    settings = {
        "data_folder": os.path.realpath(data_folder),
        "seed": seed,
        "max_per_condition": max_per_condition,
    }
    if already_prepared("synth", save_folder, settings, data_folder):
        return
    content = corpus_content("synth", data_folder, save_folder)
    rows = read_manifest(manifest)
    splits_path = os.path.join(data_folder, "splits.json")
    splits = read_splits(splits_path, rows)
    for row in rows:
        row["wav"] = row["wav"].replace(
            "$data_root", os.path.abspath(data_folder)
        )
    parts = {
        name: [r for r in rows if r["spk_id"] in set(splits.get(name, ()))]
        for name in ("train", "dev", "test")
    }
    outputs = {"manifest": "synth.csv"}
    outputs.update({name: f"synth_{name}.csv" for name in parts})
    trials = None
    n_test = len(splits.get("test", ()))
    if n_test >= 2:
        try:
            trials = make_trials(parts["test"], seed, max_per_condition)
        except ManifestError as err:
            raise ManifestError(f"{splits_path}: test split: {err}") from err
        outputs["trials"] = "synth_trials.txt"
    else:
        logger.warning(
            "synth: %d test speaker(s) in %s: no trial list (verification "
            "trials need two test speakers; synthesize 4 speakers or more)",
            n_test,
            splits_path,
        )
    marker = "synth_prepare.json"
    owned = [*outputs.values(), "synth_trials.txt", marker]
    with staged_files(save_folder, marker, owned) as staging:
        write_manifest(rows, os.path.join(staging, outputs["manifest"]))
        for name, part in parts.items():
            write_manifest(part, os.path.join(staging, outputs[name]))
        if trials is not None:
            write_trials(trials, os.path.join(staging, outputs["trials"]))
        with atomic_open(os.path.join(staging, marker)) as f:
            json.dump(
                {"settings": settings, "content": content, "outputs": outputs},
                f,
                indent=1,
            )
