"""Back-ends compared over speaker folds, each setting chosen on the
training speakers only.

For each fold, the back-end is fitted on the other folds' speakers and the
fold's speakers are scored on balanced emotional trials
(:func:`emotion_invariant.data.trials.make_trials`). A member's settings
(``dims``, ``rank``, ...) come from a grid, chosen by an inner
cross-validation over the training speakers: they are split into
``inner_folds`` groups, each group is held out in turn, and the setting of
the lowest mean EER on the held-out groups' trials wins. A member fitted
from speaker labels alone is also selected without emotion labels (its
inner trials pool every emotion), so it needs nothing a user of a speaker
model lacks. The test fold is never read before the setting is fixed.
"""

import argparse
import itertools
import json
import os
import sys

import numpy as np
import torch
from tqdm import tqdm

from emotion_invariant.atomic import atomic_open
from emotion_invariant.backend import fit
from emotion_invariant.backend.base import BackendError
from emotion_invariant.data.manifest import ManifestError, read_manifest
from emotion_invariant.data.trials import make_trials
from emotion_invariant.scoring.conditions import condition_masks
from emotion_invariant.scoring.embeddings import load_embeddings
from emotion_invariant.scoring.errors import ScoringError
from emotion_invariant.scoring.metrics import eer
from emotion_invariant.scoring.pipeline import score_trials
from emotion_invariant.scoring.trial_list import Trials

#: Report groups of the study's table, in order.
GROUPS = ("all", "N-N", "N-E", "E-E same", "E-E cross")

#: The systems compared by default: name -> spec. ``labels`` says what the
#: fit reads (``speaker`` or ``emotion`` labels); ``grid`` the settings
#: tried; ``norm`` the score normalisation (``as``: adaptive s-norm with
#: the training speakers' utterances, emotional ones included, as cohort).
SYSTEMS = {
    "zero-shot": {},
    "emotion NAP": {
        "kind": "emotion_nap",
        "labels": "emotion",
        "grid": {"dims": [2, 5, 10, 20]},
    },
    "within-speaker NAP": {
        "kind": "within_speaker_nap",
        "labels": "speaker",
        "grid": {"dims": [2, 5, 10, 20]},
    },
    "WCCN": {
        "kind": "wccn",
        "labels": "speaker",
        "grid": {"shrinkage": [0.3, 0.6, 0.8]},
    },
    "LDA": {
        "kind": "lda",
        "labels": "speaker",
        "grid": {"dims": [8, 12]},
        "settings": {"shrinkage": 0.3},
    },
    "PLDA": {
        "kind": "plda",
        "labels": "speaker",
        "grid": {"rank": [5, 10]},
        "settings": {"iters": 10, "lda_dims": 12},
    },
    "consistency": {
        "kind": "consistency",
        "labels": "speaker",
        "grid": {"dims": [2, 5, 10]},
    },
    "consistency (emotion pairs)": {
        "kind": "consistency",
        "labels": "emotion",
        "grid": {"dims": [2, 5, 10]},
    },
    "within-speaker NAP + WCCN": {
        "kind": "chain",
        "labels": "speaker",
        "grid": {
            "members": [
                [
                    ["within_speaker_nap", {"dims": d}],
                    ["wccn", {"shrinkage": s}],
                ]
                for d in (2, 5, 10)
                for s in (0.3, 0.6, 0.8)
            ]
        },
    },
    "emotion NAP + WCCN": {
        "kind": "chain",
        "labels": "emotion",
        "grid": {
            "members": [
                [["emotion_nap", {"dims": d}], ["wccn", {"shrinkage": s}]]
                for d in (2, 5, 10)
                for s in (0.3, 0.6, 0.8)
            ]
        },
    },
    "AS-norm, emotional cohort": {"norm": "as"},
    "within-speaker NAP + AS-norm": {
        "kind": "within_speaker_nap",
        "labels": "speaker",
        "grid": {"dims": [2, 5, 10, 20]},
        "norm": "as",
    },
}


def _grid(spec):
    grid = spec.get("grid", {})
    keys = sorted(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        yield {**spec.get("settings", {}), **dict(zip(keys, values))}


def score_system(spec, settings, train, test, trials, topk=100):
    """Scores of ``trials`` among ``test`` rows by a back-end fitted on
    ``train`` rows (each ``(ids, embeddings, speakers, emotions)``)."""
    ids, emb, spk, emo = train
    backend = None
    if spec.get("kind"):
        nuisances = emo if spec["labels"] == "emotion" else None
        backend = fit(spec["kind"], emb, spk, nuisances, **settings)
    test_ids, test_emb = test[0], test[1]
    if backend is not None and backend.kind == "plda":
        # Every test utterance against every other once, then gathered:
        # SpeechBrain's PLDA scoring has a large cost per call.
        matrix = backend.score_matrix(test_emb, test_emb)
        index = {uid: i for i, uid in enumerate(test_ids)}
        rows = torch.tensor([index[n] for n in trials.names])
        enrol = rows[torch.as_tensor(trials.enrol)]
        probe = rows[torch.as_tensor(trials.test)]
        return matrix[enrol, probe]
    if backend is not None:
        test_emb, emb = backend.transform(test_emb), backend.transform(emb)
    norm = spec.get("norm", "none")
    cohort = (list(ids), emb) if norm != "none" else None
    return score_trials(
        (list(test_ids), test_emb),
        trials,
        norm=norm,
        cohort=cohort,
        topk=min(topk, len(ids)),
        device="cpu",
    )


def group_eers(scores, trials):
    """EER (%) of each of :data:`GROUPS` present in ``trials``."""
    masks = condition_masks(trials)
    return {
        g: 100 * eer(scores[masks[g]], trials.labels[masks[g]])[0]
        for g in GROUPS
        if g in masks and 0 < trials.labels[masks[g]].sum() < masks[g].sum()
    }


def _subset(data, rows):
    ids, emb, spk, emo = data
    return (
        [ids[i] for i in rows],
        emb[rows],
        [spk[i] for i in rows],
        [emo[i] for i in rows],
    )


def _trials(data, seed, pooled):
    ids, _, spk, emo = data
    labels = ["x"] * len(ids) if pooled else emo
    records = make_trials(
        [{"ID": i, "spk_id": s, "emo": e} for i, s, e in zip(ids, spk, labels)],
        seed=seed,
    )
    return Trials.from_records(records)


def select_settings(spec, train, inner_folds=3, seed=0):
    """The grid setting of lowest mean EER over held-out groups of the
    training speakers (the first setting when the grid has one).

    Returns
    -------
    tuple
        ``(settings, {setting as json: mean EER %})``.
    """
    candidates = list(_grid(spec))
    if len(candidates) <= 1:
        return (candidates or [{}])[0], {}
    speakers = sorted(set(train[2]))
    order = np.random.default_rng(seed).permutation(len(speakers))
    group_of = {speakers[j]: k % inner_folds for k, j in enumerate(order)}
    pooled = spec.get("labels") != "emotion"
    splits = []
    for k in range(inner_folds):
        held = [i for i, s in enumerate(train[2]) if group_of[s] == k]
        rest = [i for i, s in enumerate(train[2]) if group_of[s] != k]
        part = _subset(train, held)
        splits.append((_subset(train, rest), part, _trials(part, seed, pooled)))
    means = {}
    for settings in candidates:
        values = []
        for fit_part, held_part, trials in splits:
            try:
                scores = score_system(
                    spec, settings, fit_part, held_part, trials
                )
            except BackendError:
                values = [float("inf")]
                break
            values.append(100 * eer(scores, trials.labels)[0])
        means[json.dumps(settings, sort_keys=True)] = float(np.mean(values))
    best = min(means, key=means.get)
    return json.loads(best), means


def run_study(
    data,
    folds,
    systems=None,
    seed=0,
    inner_folds=3,
    progress=True,
    fit_emotions=None,
):
    """EER (%) by group of every system on every fold.

    Arguments
    ---------
    data : tuple
        ``(ids, embeddings [N, D], speakers, emotions)``.
    folds : list
        ``N`` fold labels; each fold is held out in turn.
    systems : dict, optional
        Name -> spec (default :data:`SYSTEMS`).
    fit_emotions : list, optional
        ``N`` emotion labels the back-ends are fitted (and their settings
        chosen) on instead of ``data``'s, e.g. an emotion model's
        predictions; the test fold's trials keep ``data``'s.

    Returns
    -------
    dict
        ``{system: {fold: {"eer": {group: %}, "settings": {...}}}}``.
    """
    systems = SYSTEMS if systems is None else systems
    data = _prepared(data)
    fitted = data
    if fit_emotions is not None:
        fitted = (*data[:3], list(fit_emotions))
    results = {name: {} for name in systems}
    labels = sorted(set(folds), key=str)
    work = [(f, n) for f in labels for n in systems]
    for fold, name in tqdm(work, desc="back-end study", disable=not progress):
        test_rows = [i for i, f in enumerate(folds) if f == fold]
        train_rows = [i for i, f in enumerate(folds) if f != fold]
        train, test = _subset(fitted, train_rows), _subset(data, test_rows)
        chosen = select_settings(systems[name], train, inner_folds, seed)
        results[name][str(fold)] = _fold_result(
            systems[name], chosen, train, test, seed
        )
    return results


def _prepared(data):
    ids, emb, spk, emo = data
    emb = torch.as_tensor(np.asarray(emb), dtype=torch.float32)
    return (list(ids), emb, list(spk), list(emo))


def _fold_result(spec, chosen, train, test, seed):
    """One system on one test fold, fitted on ``train`` with the setting
    ``chosen`` (``(settings, inner EERs)``)."""
    settings, tried = chosen
    trials = _trials(test, seed, pooled=False)
    scores = score_system(spec, settings, train, test, trials)
    return {
        "eer": group_eers(scores, trials),
        "settings": settings,
        "inner_eer": tried,
    }


def run_transfer(source, target, folds, systems=None, seed=0, inner_folds=3):
    """Like :func:`run_study`, with every back-end fitted (and its setting
    chosen) on all of ``source``'s speakers, another corpus, and scored on
    each fold of ``target`` (the cross-domain case).
    """
    systems = SYSTEMS if systems is None else systems
    source, target = _prepared(source), _prepared(target)
    chosen = {
        name: select_settings(spec, source, inner_folds, seed)
        for name, spec in systems.items()
    }
    results = {name: {} for name in systems}
    for fold in sorted(set(folds), key=str):
        test = _subset(target, [i for i, f in enumerate(folds) if f == fold])
        for name, spec in systems.items():
            results[name][str(fold)] = _fold_result(
                spec, chosen[name], source, test, seed
            )
    return results


def summary_table(results, reference="zero-shot", needs=None):
    """Markdown: mean ± std over folds of each group's EER, and the mean's
    change against ``reference``."""
    needs = needs or {}
    lines = [
        "| system | needs | " + " | ".join(GROUPS) + " |",
        "|---|---|" + "---:|" * len(GROUPS),
    ]
    ref = results.get(reference, {})
    for name, by_fold in results.items():
        cells = []
        for group in GROUPS:
            values = [
                f["eer"][group] for f in by_fold.values() if group in f["eer"]
            ]
            if not values:
                cells.append("")
                continue
            cell = f"{np.mean(values):.2f} ± {np.std(values):.2f}"
            base = [f["eer"][group] for f in ref.values() if group in f["eer"]]
            if name != reference and base and np.mean(base) > 0:
                change = 100 * (np.mean(values) / np.mean(base) - 1)
                cell += f" ({change:+.1f}%)"
            cells.append(cell)
        lines.append(
            f"| {name} | {needs.get(name, '')} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def write_study(results, out, systems=None, emotions="emotion labels"):
    """``out/study.json`` and ``out/study.md`` (``emotions``: what the
    emotion labels the back-ends were fitted on are, for its needs
    column)."""
    systems = SYSTEMS if systems is None else systems
    needs = {
        n: {"speaker": "speaker labels", "emotion": emotions}.get(
            s.get("labels"), "unlabelled cohort" if s.get("norm") else "-"
        )
        for n, s in systems.items()
    }
    os.makedirs(out, exist_ok=True)
    with atomic_open(os.path.join(out, "study.json"), "w") as f:
        json.dump(results, f, indent=1)
    with atomic_open(os.path.join(out, "study.md"), "w") as f:
        f.write(summary_table(results, needs=needs))


def load_labelled(embeddings, manifest):
    """``(ids, embeddings, speakers, emotions)`` from an embedding file and
    the manifest of its utterances, and the manifest's rows by ID."""
    ids, matrix = load_embeddings(embeddings)
    by_id = {r["ID"]: r for r in read_manifest(manifest)}
    missing = [i for i in ids if i not in by_id]
    if missing:
        raise BackendError(
            f"{embeddings}: {len(missing)} id(s) not in {manifest}, e.g. "
            f"{missing[0]!r}"
        )
    spk = [by_id[i]["spk_id"] for i in ids]
    emo = [by_id[i]["emo"] for i in ids]
    return (list(ids), matrix, spk, emo), by_id


def load_fit_labels(path, ids):
    """The ``emo`` label of each of ``ids`` in the manifest ``path`` (as
    ``python -m emotion_invariant.backend label`` writes it)."""
    by_id = {
        r["ID"]: r["emo"] for r in read_manifest(path, allow_empty_emo=True)
    }
    missing = [i for i in ids if not by_id.get(i)]
    if missing:
        raise BackendError(
            f"--fit-labels {path}: no emotion label for {len(missing)} "
            f"utterance(s), e.g. {missing[0]!r}"
        )
    return [by_id[i] for i in ids]


def load_study_data(embeddings, manifest, fold_column="fold"):
    """``(data, folds)`` for :func:`run_study` from an embedding file and
    the manifest of its utterances (``spk_id``, ``emo`` and a fold column).
    """
    data, by_id = load_labelled(embeddings, manifest)
    if any(not by_id[i].get(fold_column) for i in data[0]):
        raise BackendError(
            f"{manifest}: no {fold_column!r} value for some utterances; "
            "give the speaker folds in that column"
        )
    return data, [by_id[i][fold_column] for i in data[0]]


def main(argv=None):
    """Command line: ``python -m emotion_invariant.backend.study``."""
    parser = argparse.ArgumentParser(
        prog="python -m emotion_invariant.backend.study",
        description="Compare scoring back-ends over speaker folds.",
    )
    parser.add_argument("--embeddings", required=True, help=".npz/.pt file")
    parser.add_argument("--manifest", required=True, help="manifest CSV")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--fold-column", default="fold")
    parser.add_argument(
        "--systems", nargs="+", choices=sorted(SYSTEMS), default=None
    )
    parser.add_argument(
        "--fit-embeddings",
        help="fit every back-end on this corpus's embeddings instead "
        "(cross-domain); needs --fit-manifest",
    )
    parser.add_argument("--fit-manifest")
    parser.add_argument(
        "--fit-labels",
        help="fit on these emotion labels (a manifest: python -m "
        "emotion_invariant.backend label) instead of --manifest's; the "
        "trials keep --manifest's",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inner-folds", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        data, folds = load_study_data(
            args.embeddings, args.manifest, args.fold_column
        )
        systems = SYSTEMS
        if args.systems:
            systems = {n: SYSTEMS[n] for n in ["zero-shot", *args.systems]}
        if args.fit_embeddings:
            if not args.fit_manifest:
                raise BackendError("--fit-embeddings needs --fit-manifest")
            source, _ = load_labelled(args.fit_embeddings, args.fit_manifest)
            results = run_transfer(
                source, data, folds, systems, args.seed, args.inner_folds
            )
        else:
            fit_emotions = None
            if args.fit_labels:
                fit_emotions = load_fit_labels(args.fit_labels, data[0])
            results = run_study(
                data,
                folds,
                systems,
                args.seed,
                args.inner_folds,
                fit_emotions=fit_emotions,
            )
        emotions = "emotion labels"
        if args.fit_labels:
            emotions = "predicted emotion labels"
        write_study(results, args.out, systems, emotions)
    except (BackendError, ScoringError, ManifestError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(open(os.path.join(args.out, "study.md")).read(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
