"""Smoke runs and fold logic of the speech emotion recognition recipe."""

import copy
import csv
import doctest
import json
import os
import re
import shutil

import pytest
import speechbrain as sb
import torch
from fake_corpora import TINY_ECAPA
from recipe_scripts import load_recipe
from sklearn.metrics import balanced_accuracy_score, f1_score

from emotion_invariant.data.folds import (
    check_speaker_independent,
    fold_of_speakers,
    fold_split,
)
from emotion_invariant.data.manifest import (
    ManifestError,
    read_manifest,
    write_manifest,
)
from emotion_invariant.emotion import report as report_module
from emotion_invariant.experiment import requested_folds
from emotion_invariant.hparams import load_hparams
from emotion_invariant.scoring.extract import extract_embeddings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams", "emotion_recognition")
TINY_MODEL = [
    *TINY_ECAPA,
    "--emo_hidden=16",
    "--adv_hidden=16",
    "--max_train_len=1.5",
]


def _load(name):
    return load_recipe("emotion_recognition", name)


@pytest.fixture(scope="module")
def recipe():
    return _load("train")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread than on a busy two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _argv(yaml, corpus, out, *extra):
    return [
        os.path.join(HPARAMS, yaml),
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        *TINY_MODEL,
        *extra,
    ]


@pytest.fixture(scope="module")
def baseline_run(recipe, tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ser_baseline")
    argv = _argv("ser_baseline.yaml", tiny_corpus, out, "--debug")
    return out, recipe.main(argv)


@pytest.fixture(scope="module")
def adversarial_fold_run(recipe, tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ser_adversarial")
    argv = _argv(
        "ser_adversarial.yaml",
        tiny_corpus,
        out,
        "--debug",
        "--fold=2",
        "--n_folds=3",
        "--adv_memory=32",
        "--adv_lr_factor=5",
        "--grl_warmup=0",
    )
    return out, recipe.main(argv)


def _valid_ua(log):
    return [float(x) for x in re.findall(r"valid UA: ([0-9.e+-]+)", log)]


def _check_run(run_folder, summary_folder, summary):
    eval_dir = run_folder / "eval"
    for name in (
        "report.json",
        "report.md",
        "confusion.txt",
        "confusion.png",
        "predictions.csv",
    ):
        assert (eval_dir / name).is_file(), name
    for name in ("report.json", "report.md", "confusion.png"):
        assert (summary_folder / name).is_file(), name
    report = json.loads((eval_dir / "report.json").read_text())
    with open(eval_dir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    truth = [row["emo"] for row in rows]
    predicted = [row["predicted"] for row in rows]
    assert report["n"] == len(rows)
    assert report["ua"] == pytest.approx(
        balanced_accuracy_score(truth, predicted)
    )
    assert report["macro_f1"] == pytest.approx(
        f1_score(truth, predicted, average="macro", zero_division=0)
    )
    probe = report["probe"]
    assert probe["chance_uniform"] == pytest.approx(
        1 / report["speakers"]["train"]
    )
    assert 0 <= probe["accuracy"] <= 1
    log = (run_folder / "train_log.txt").read_text()
    assert report["best_dev_ua"] == pytest.approx(max(_valid_ua(log)), rel=1e-2)
    saved = json.loads((summary_folder / "report.json").read_text())
    assert saved["runs"] == summary["runs"]
    assert saved["summary"]["ua"]["mean"] == pytest.approx(report["ua"])
    return report, log


def test_debug_run_baseline_split(baseline_run):
    out, summary = baseline_run
    report, log = _check_run(out, out, summary)
    assert summary["mode"] == "split" and list(summary["runs"]) == ["split"]
    test_rows = read_manifest(out / "manifests" / "synth_test.csv")
    test_spk = {row["spk_id"] for row in test_rows}
    assert set(report["test_speakers"]) == test_spk
    assert "train adv_ce" not in log and "train entropy" not in log


def test_debug_run_adversarial_fold(adversarial_fold_run):
    out, summary = adversarial_fold_run
    report, log = _check_run(out / "fold_2", out, summary)
    assert summary["mode"] == "folds" and list(summary["runs"]) == ["2"]
    assert "train adv_ce" in log and "train entropy" in log
    lambdas = [float(x) for x in re.findall(r"train lambda: ([0-9.e+-]+)", log)]
    assert lambdas[-1] > lambdas[0] > 0  # the reversal ramps up
    manifests = out / "fold_2" / "manifests"
    speakers = {
        name: {r["spk_id"] for r in read_manifest(manifests / f"{name}.csv")}
        for name in ("train", "dev", "test")
    }
    assert set(report["test_speakers"]) == speakers["test"]
    assert not speakers["test"] & (speakers["train"] | speakers["dev"])


def _rows(n_speakers, per_speaker=2, fold=None):
    rows = []
    for s in range(n_speakers):
        for i in range(per_speaker):
            row = {
                "ID": f"s{s:02d}_{i}",
                "duration": 1.0,
                "wav": f"/x/s{s:02d}_{i}.wav",
                "spk_id": f"s{s:02d}",
                "emo": "neu" if i % 2 else "ang",
                "gender": "mf"[s % 2],
            }
            if fold is not None:
                row["fold"] = fold(s)
            rows.append(row)
    return rows


@pytest.mark.parametrize(
    "fold",
    [
        None,
        lambda s: str(s % 4 + 1),
        lambda s: "" if s == 0 else str(s % 3 + 1),
    ],
    ids=["drawn", "column", "column-with-unnamed-speaker"],
)
def test_folds_never_share_a_speaker(fold):
    rows = _rows(17, fold=fold)
    fold_of = fold_of_speakers(rows, n_folds=5, seed=3)
    tested = []
    for label in sorted(set(fold_of.values())):
        parts = fold_split(rows, fold_of, label, 0.15, seed=3)
        spk = {k: {r["spk_id"] for r in v} for k, v in parts.items()}
        assert spk["test"] == {s for s, f in fold_of.items() if f == label}
        assert not spk["test"] & spk["dev"]
        assert not spk["test"] & spk["train"]
        assert not spk["dev"] & spk["train"]
        assert spk["dev"] and len(spk["train"]) >= 2
        assert spk["train"] | spk["dev"] | spk["test"] == set(fold_of)
        check_speaker_independent(parts)
        tested.extend(spk["test"])
    # Every speaker with a fold is tested exactly once over the folds.
    assert sorted(tested) == sorted(fold_of)
    named = {r["spk_id"] for r in rows if r.get("fold", "-")}
    assert set(fold_of) == named


def test_drawn_folds_are_balanced_and_seeded():
    rows = _rows(20)
    folds = fold_of_speakers(rows, n_folds=5, seed=0)
    sizes = sorted(list(folds.values()).count(k) for k in set(folds.values()))
    assert sizes == [4] * 5
    assert folds == fold_of_speakers(rows, n_folds=5, seed=0)
    assert folds != fold_of_speakers(rows, n_folds=5, seed=1)


def test_fold_errors_are_clear():
    rows = _rows(6, fold=lambda s: str(s % 3 + 1))
    fold_of = fold_of_speakers(rows)
    with pytest.raises(ManifestError, match="fold '7' does not exist"):
        fold_split(rows, fold_of, "7")
    with pytest.raises(ManifestError, match="at least 3 are needed"):
        fold_split(rows, dict(zip(["s00", "s01", "s02"], "112")), "1")
    rows[1]["fold"] = "2"  # s00 now in folds 1 and 2
    with pytest.raises(ManifestError, match="speaker 's00' is in fold '1'"):
        fold_of_speakers(rows, source="m.csv")
    with pytest.raises(ManifestError, match="cannot draw 9 speaker folds"):
        fold_of_speakers(_rows(4), n_folds=9)


def test_overlapping_speakers_stop_training(
    recipe, baseline_run, tiny_corpus, tmp_path
):
    """A test speaker also in training fails before anything is trained."""
    out, _ = baseline_run
    train = read_manifest(out / "manifests" / "synth_train.csv")
    test = read_manifest(out / "manifests" / "synth_test.csv")
    leaky = tmp_path / "leaky_train.csv"
    write_manifest(train + test[:1], str(leaky))
    argv = _argv(
        "ser_baseline.yaml",
        tiny_corpus,
        tmp_path / "run",
        "--skip_prep=true",
        f"--train_annotation={leaky}",
        f"--valid_annotation={out / 'manifests' / 'synth_dev.csv'}",
        f"--test_annotation={out / 'manifests' / 'synth_test.csv'}",
    )
    spk = test[0]["spk_id"]
    with pytest.raises(
        ManifestError, match=rf"speaker\(s\) {spk} of test are in train"
    ):
        recipe.build(argv)
    assert not (tmp_path / "run" / "train_log.txt").exists()
    assert not (tmp_path / "run" / "eval").exists()


def test_class_balanced_weights(recipe, baseline_run, tiny_corpus, tmp_path):
    out, _ = baseline_run
    manifests = out / "manifests"
    rows = read_manifest(manifests / "synth_train.csv")
    write_manifest(  # unbalance the emotions: drop most "ang" rows
        [r for r in rows if r["emo"] != "ang"]
        + [r for r in rows if r["emo"] == "ang"][:2],
        str(tmp_path / "train.csv"),
    )
    hparams, _, _ = load_hparams(
        os.path.join(HPARAMS, "ser_baseline.yaml"),
        {
            "data_folder": str(tiny_corpus),
            "output_folder": str(tmp_path / "out"),
            "class_balanced": True,
            "train_annotation": str(tmp_path / "train.csv"),
            "valid_annotation": str(manifests / "synth_dev.csv"),
            "test_annotation": str(manifests / "synth_test.csv"),
        },
    )
    recipe.dataio_prep(hparams)
    labels = hparams["emotion_labels"]
    counts = torch.tensor(
        [
            sum(r["emo"] == e for r in read_manifest(tmp_path / "train.csv"))
            for e in labels
        ]
    ).float()
    weights = hparams["class_weights"]
    # Each class carries the same total weight, N / C.
    torch.testing.assert_close(
        weights * counts, torch.full_like(counts, counts.sum() / len(labels))
    )
    assert weights[labels.index("ang")] == weights.max()


def test_recipe_doctests():
    for module in (_load("compare"),):
        result = doctest.testmod(module)
        assert result.failed == 0 and result.attempted > 0, module.__name__


def _summary(path, mode, runs, ua, probe):
    path.mkdir(parents=True)
    stats = {
        "ua": ua,
        "wa": ua,
        "macro_f1": ua,
        "probe_accuracy": probe,
        "probe_chance": 0.25,
    }
    summary = {k: {"mean": v} for k, v in stats.items()}
    report = {"mode": mode, "runs": dict.fromkeys(runs), "summary": summary}
    (path / "report.json").write_text(json.dumps(report))
    return str(path)


def test_compare_over_seeds(tmp_path, capsys):
    compare = _load("compare")
    base = [
        _summary(tmp_path / f"b{s}", "folds", "12", ua, 0.9)
        for s, ua in enumerate((0.50, 0.60))
    ]
    adv = [
        _summary(tmp_path / f"a{s}", "folds", "12", ua, 0.4)
        for s, ua in enumerate((0.56, 0.60, 0.64))
    ]
    out = tmp_path / "cmp.md"
    status = compare.main(
        [
            "baseline=" + ",".join(base),
            "adv=" + ",".join(adv),
            "--out",
            str(out),
        ]
    )
    assert status == 0
    rows = {line.split(" | ")[0]: line for line in out.read_text().splitlines()}
    # baseline: mean 55.0, sample std 7.1; adv: 60.0 ± 4.0, +5.0 points.
    assert "| 2 | 55.0 ± 7.1 |" in rows["| baseline"]
    assert "| 3 | 60.0 ± 4.0 (+5.0) |" in rows["| adv"]
    assert "40.0 ± 0.0 (-50.0)" in rows["| adv"]

    other = _summary(tmp_path / "split", "split", ["split"], 0.5, 0.5)
    assert compare.main([f"baseline={base[0]}", f"x={other}"]) == 1
    assert "not evaluated on the same folds" in capsys.readouterr().err
    assert compare.main([f"baseline={tmp_path / 'nothing'}"]) == 1
    assert "no summary report" in capsys.readouterr().err


def test_compare_pools_runs_of_one_fold_each(tmp_path, capsys):
    """The suite's per-fold runs: each folder is one fold of one seed; the
    table pools them (mean and spread over all runs)."""
    compare = _load("compare")
    base = [
        _summary(tmp_path / f"b{f}", "folds", [f], ua, 0.9)
        for f, ua in (("1", 0.50), ("2", 0.70))
    ]
    pre = [
        _summary(tmp_path / f"p{f}", "folds", [f], ua, 0.8)
        for f, ua in (("1", 0.60), ("2", 0.70))
    ]
    out = tmp_path / "cmp.md"
    args = ["none=" + ",".join(base), "pre=" + ",".join(pre)]
    assert compare.main([*args, "--out", str(out)]) == 0
    text = out.read_text()
    assert "folds 1, 2, one run per fold" in text
    rows = {line.split(" | ")[0]: line for line in text.splitlines()}
    # none: (50 + 70) / 2 = 60.0, sample std 14.1; pre: 65.0 ± 7.1, +5.0.
    assert "| 2 | 60.0 ± 14.1 |" in rows["| none"]
    assert "| 2 | 65.0 ± 7.1 (+5.0) |" in rows["| pre"]
    # Folds that differ between systems are refused.
    assert compare.main(["none=" + ",".join(base), f"pre={pre[0]}"]) == 1
    assert "not evaluated on the same folds" in capsys.readouterr().err
    # Several folds in one run next to runs of one fold: not one system.
    both = _summary(tmp_path / "both", "folds", "12", 0.5, 0.5)
    assert compare.main([f"x={both},{base[0]}"]) == 1
    assert "not over the same folds" in capsys.readouterr().err


def test_fold_all_runs_every_fold(recipe, tiny_corpus, tmp_path):
    argv = _argv("ser_baseline.yaml", tiny_corpus, tmp_path, "--n_folds=3")
    assert requested_folds(argv) == [None]
    assert requested_folds([*argv, "--fold=all"]) == ["1", "2", "3"]
    assert requested_folds([*argv, "--fold", "2"]) == ["2"]
    # A list runs those folds, in its order, each once.
    assert requested_folds([*argv, "--fold=3,1,3"]) == ["3", "1"]
    with pytest.raises(ValueError, match="'4' is not a fold"):
        requested_folds([*argv, "--fold=1,4"])


@pytest.mark.parametrize("norm_type", ["sentence", "global"])
def test_evaluate_reproduces_the_best_checkpoint(
    recipe, tiny_corpus, tmp_path, norm_type
):
    """Re-evaluating a finished run gives the same report, bit for bit; with
    global normalisation, that needs the training mean from the checkpoint,
    and with the emotion head's input standardised (global runs here), its
    running statistics."""
    argv = _argv(
        "ser_adversarial.yaml",
        tiny_corpus,
        tmp_path,
        "--number_of_epochs=2",
        f"--norm_type={norm_type}",
        f"--emo_input_norm={norm_type == 'global'}",
    )
    recipe.main(argv)
    first = json.loads((tmp_path / "eval" / "report.json").read_text())
    ckpts = list((tmp_path / "save").glob("CKPT+*"))
    assert len(ckpts) == 1  # only the best dev UA is kept
    log = (tmp_path / "train_log.txt").read_text()
    assert first["best_dev_ua"] == pytest.approx(max(_valid_ua(log)), rel=1e-2)
    normalizer = torch.load(ckpts[0] / "normalizer.ckpt")
    if norm_type == "global":
        assert normalizer["count"] > 0
        assert normalizer["glob_mean"].abs().sum() > 0
    else:
        assert normalizer["count"] == 0
    head = torch.load(ckpts[0] / "emotion_classifier.ckpt")
    if norm_type == "global":
        # The standardisation's statistics are the training embeddings'.
        assert head["0.norm.num_batches_tracked"] > 0
        assert (
            head["0.norm.running_var"].sum()
            != head["0.norm.running_var"].numel()
        )
    else:
        assert not any(key.startswith("0.") for key in head)
    _load("evaluate").main(argv)
    again = json.loads((tmp_path / "eval" / "report.json").read_text())
    assert again == first


@pytest.mark.parametrize(
    "first, kept, chosen", [(1, [1, 3], 1), (2, [2, 3], 2)]
)
def test_checkpoints_kept_and_chosen_from_select_from_epoch(
    tmp_path, first, kept, chosen
):
    """Epoch 1 has the best dev UA; from epoch 2 on, epoch 2 is kept and
    recovered in its place, and the latest epoch is kept for resuming."""
    checkpointer = sb.utils.checkpoints.Checkpointer(
        tmp_path, {"model": torch.nn.Linear(1, 1)}
    )
    rank = report_module.checkpoint_rank(first)
    for epoch, ua in ((1, 0.9), (2, 0.6), (3, 0.5)):
        checkpointer.save_and_keep_only(
            meta={"UA": ua, "epoch": epoch}, importance_keys=[rank]
        )
    assert sorted(c.meta["epoch"] for c in checkpointer.list_checkpoints()) == (
        kept
    )
    best = checkpointer.find_checkpoint(importance_key=rank)
    assert best.meta["epoch"] == chosen


def test_select_from_epoch_in_the_recipe(recipe, tiny_corpus, tmp_path):
    """The report's checkpoint is the best dev UA from the epoch asked for
    on, and the run keeps it; an epoch past the last is refused before the
    run writes anything (the empty save folder is SpeechBrain's
    Checkpointer's, made when the yaml loads)."""
    argv = _argv(
        "ser_baseline.yaml",
        tiny_corpus,
        tmp_path / "run",
        "--number_of_epochs=2",
        "--select_from_epoch=2",
    )
    recipe.main(argv)
    report = json.loads((tmp_path / "run" / "eval" / "report.json").read_text())
    log = (tmp_path / "run" / "train_log.txt").read_text()
    assert report["best_epoch"] == 2
    assert report["best_dev_ua"] == pytest.approx(_valid_ua(log)[1], rel=1e-2)
    metas = list((tmp_path / "run" / "save").glob("CKPT+*/CKPT.yaml"))
    assert ["epoch: 2" in meta.read_text() for meta in metas] == [True]
    # A checkpoint saved before epochs were recorded: said, not guessed.
    text = metas[0].read_text().replace("epoch: 2\n", "")
    metas[0].write_text(text)
    _load("evaluate").main(argv)
    assert (
        "predates select_from_epoch"
        in (tmp_path / "run" / "log.txt").read_text()
    )
    old = json.loads((tmp_path / "run" / "eval" / "report.json").read_text())
    assert old["best_epoch"] is None
    assert old["ua"] == report["ua"]
    late = _argv("ser_baseline.yaml", tiny_corpus, tmp_path / "late")
    with pytest.raises(ValueError, match="select_from_epoch: 11 is after"):
        recipe.main([*late, "--select_from_epoch=11"])
    assert [p.name for p in (tmp_path / "late").rglob("*")] == ["save"]
    with pytest.raises(ValueError, match="select_from_epoch: 0 is not valid"):
        recipe.main([*late, "--select_from_epoch=0"])


def test_evaluating_a_run_without_checkpoints_is_refused(
    recipe, tiny_corpus, tmp_path
):
    """A folder never trained (or trained with --debug, which keeps its
    checkpoints in a temporary folder) is refused, not scored with an
    untrained emotion head; so is a run of no epoch."""
    argv = _argv("ser_baseline.yaml", tiny_corpus, tmp_path / "none")
    with pytest.raises(ValueError, match="no end-of-epoch checkpoint"):
        _load("evaluate").main(argv)
    assert not (tmp_path / "none" / "eval").exists()
    # No epoch to train: refused before the corpus is prepared.
    argv = _argv(
        "ser_baseline.yaml",
        tiny_corpus,
        tmp_path / "zero",
        "--number_of_epochs=0",
    )
    with pytest.raises(ValueError, match="number_of_epochs: 0"):
        recipe.main(argv)
    assert not (tmp_path / "zero" / "manifests").exists()


def test_adversary_reverses_the_encoder_gradient(recipe, tiny_corpus, tmp_path):
    """The speaker loss reaches the encoder as -lambda times its gradient."""
    argv = _argv(
        "ser_adversarial.yaml",
        tiny_corpus,
        tmp_path,
        "--grl_kind=constant",
        "--grl_lambda=0.5",
        "--grl_warmup=0",
        "--entropy_weight=0.0",
        "--adv_memory=0",
        # Per-utterance statistics: the passes below run in eval mode, where
        # a global normaliser would need a trained mean.
        "--norm_type=sentence",
    )
    brain, hparams, data = recipe.build(argv)
    loader = sb.dataio.dataloader.make_dataloader(data["train"], batch_size=4)
    batch = next(iter(loader))
    brain.modules.eval()  # no dropout: the passes below see the same net
    brain.on_stage_start(sb.Stage.TRAIN, epoch=1)
    brain.step = 1
    encoder = hparams["embedding_model"]

    def encoder_grads(adv_weight):
        brain.hparams.adv_weight = adv_weight
        brain.modules.zero_grad()
        predictions = brain.compute_forward(batch, sb.Stage.TRAIN)
        brain.compute_objectives(predictions, batch, sb.Stage.TRAIN).backward()
        return [p.grad.clone() for p in encoder.parameters()]

    with_adv, without = encoder_grads(1.0), encoder_grads(0.0)
    brain.modules.zero_grad()
    wavs, lens = batch.sig
    spk = batch.spk_encoded.data.squeeze(1)
    head = hparams["adversary"].head
    torch.nn.functional.cross_entropy(
        head(brain.embed(wavs, lens)), spk
    ).backward()
    for a, b, p in zip(with_adv, without, encoder.parameters()):
        torch.testing.assert_close(a - b, -0.5 * p.grad, atol=1e-6, rtol=1e-4)


def test_adversary_learning_rate_factor(recipe, tiny_corpus, tmp_path):
    """The head's lr is adv_lr_factor times the encoder's, after annealing
    and after resuming from the checkpoint."""
    out = tmp_path / "run"
    extra = ("--adv_lr_factor=10", "--number_of_epochs=2", "--lr=0.002")
    argv = _argv("ser_adversarial.yaml", tiny_corpus, out, *extra)
    brain, hparams, data = recipe.build(argv)
    recipe.fit(brain, hparams, data)
    groups = brain.optimizer.param_groups
    head = {id(p) for p in hparams["adversary"].parameters()}
    assert {id(p) for p in groups[1]["params"]} == head
    assert not head & {id(p) for p in groups[0]["params"]}
    annealed = hparams["lr_annealing"](2)[1]
    assert annealed < 0.002
    assert groups[0]["lr"] == pytest.approx(annealed)
    assert groups[1]["lr"] == pytest.approx(10 * annealed)

    # A fresh brain on the same folder recovers the scaled rates.
    brain, hparams, _ = recipe.build(argv)
    brain.on_fit_start()
    groups = brain.optimizer.param_groups
    assert groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"])
    assert groups[0]["lr"] == pytest.approx(annealed)

    with pytest.raises(ValueError, match="adv_lr_factor"):
        bad = _argv("ser_adversarial.yaml", tiny_corpus, tmp_path / "bad")
        recipe.build(bad + ["--adv_lr_factor=0"])[0].on_fit_start()


def test_replay_trains_the_head_only(recipe, tiny_corpus, tmp_path):
    """Replayed embeddings reach the head's gradient, never the encoder's."""
    argv = _argv(
        "ser_adversarial.yaml",
        tiny_corpus,
        tmp_path,
        "--adv_memory=64",
        "--adv_replay=16",
        "--entropy_weight=0.0",
        "--norm_type=sentence",  # eval-mode passes, as above
    )
    brain, hparams, data = recipe.build(argv)
    loader = sb.dataio.dataloader.make_dataloader(data["train"], batch_size=4)
    batches = iter(loader)
    brain.modules.eval()
    brain.on_stage_start(sb.Stage.TRAIN, epoch=1)
    brain.step = 1
    memory = hparams["adversary_memory"]
    assert brain.compute_forward(next(batches), sb.Stage.TRAIN)[3] is None
    assert len(memory) == 4  # the first batch was remembered
    batch = next(batches)
    encoder = hparams["embedding_model"]
    head = hparams["adversary"].head

    def grads(replay_on):
        brain.modules.zero_grad()
        state = {k: v.clone() for k, v in memory.state_dict().items()}
        torch.manual_seed(0)
        predictions = brain.compute_forward(batch, sb.Stage.TRAIN)
        memory.load_state_dict(state)  # the next pass sees the same memory
        if not replay_on:
            predictions = predictions[:3] + (None,)
        else:
            assert predictions[3][0].shape[0] == 16
        brain.compute_objectives(predictions, batch, sb.Stage.TRAIN).backward()
        return (
            [p.grad.clone() for p in encoder.parameters()],
            [p.grad.clone() for p in head.parameters()],
        )

    (enc_on, head_on), (enc_off, head_off) = grads(True), grads(False)
    for a, b in zip(enc_on, enc_off):
        torch.testing.assert_close(a, b)
    assert any(not torch.allclose(a, b) for a, b in zip(head_on, head_off))


class _Interrupt(RuntimeError):
    pass


def _newest(save):
    ckpts = sb.utils.checkpoints.Checkpointer(str(save))
    newest = max(ckpts.list_checkpoints(), key=lambda c: c.meta["unixtime"])
    return {
        name: torch.load(newest.path / f"{name}.ckpt", weights_only=True)
        for name in ("embedding_model", "adversary", "adversary_memory")
    }


def test_resume_after_interrupted_epoch(
    recipe, tiny_corpus, tmp_path, monkeypatch
):
    """An adversarial run killed mid-epoch and resumed ends where an unbroken
    run ends: encoder, adversary head and its replay memory."""
    common = (
        "--number_of_epochs=2",
        "--ckpt_interval_steps=1",
        "--adv_memory=40",
        "--adv_replay=8",
        "--grl_warmup=0",
    )
    unbroken = _argv(
        "ser_adversarial.yaml", tiny_corpus, tmp_path / "a", *common
    )
    recipe.main(unbroken)
    calls = {"n": 0}
    original = recipe.EmotionBrain.on_fit_batch_end

    def crash(self, *args):
        original(self, *args)
        calls["n"] += 1
        if calls["n"] == 9:  # mid-way through the second epoch (6 steps)
            raise _Interrupt

    monkeypatch.setattr(recipe.EmotionBrain, "on_fit_batch_end", crash)
    broken = _argv("ser_adversarial.yaml", tiny_corpus, tmp_path / "b", *common)
    with pytest.raises(_Interrupt):
        recipe.main(broken)
    monkeypatch.undo()
    _load("train").main(broken)
    a, b = _newest(tmp_path / "a" / "save"), _newest(tmp_path / "b" / "save")
    for name in a:
        for key in a[name]:
            torch.testing.assert_close(a[name][key], b[name][key], msg=key)


@pytest.mark.parametrize(
    "yaml", ["ser_ecapa_voxceleb.yaml", "ser_ecapa_voxceleb_adversarial.yaml"]
)
def test_encoder_from_a_speaker_model_keeps_frozen_blocks(
    recipe, tiny_corpus, tmp_path, yaml
):
    """``pretrained_encoder`` on a published-layout folder starts the
    encoder from it; ``freeze_blocks`` stages and (``freeze_bn``) every
    batch norm keep their weights and statistics while the rest trains;
    with the adversarial preset the speaker head trains beside it."""
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    speaker = tmp_path / "speaker_model"
    speaker.mkdir()
    torch.manual_seed(3)
    source = ECAPA_TDNN(
        24, channels=[16, 16, 16, 16, 48], attention_channels=8, lin_neurons=16
    )
    for buffer_name, buffer in source.named_buffers():
        if buffer_name.endswith("running_mean"):
            buffer.uniform_(-1, 1)  # statistics a run would visibly move
    torch.save(source.state_dict(), speaker / "embedding_model.ckpt")
    out = tmp_path / "run"
    argv = _argv(
        yaml,
        tiny_corpus,
        out,
        "--debug",
        f"--pretrained_encoder={speaker}",
        "--freeze_blocks=4",
        "--lr=0.01",
    )
    brain, hparams, datasets = recipe.build(argv)
    head = copy.deepcopy(hparams["adversary"].state_dict())
    brain.fit(
        hparams["epoch_counter"],
        datasets["train"],
        datasets["dev"],
        train_loader_kwargs=hparams["train_dataloader_options"],
        valid_loader_kwargs=hparams["valid_dataloader_options"],
    )
    trained = hparams["embedding_model"].state_dict()
    before = source.state_dict()
    lower = ("blocks.0.", "blocks.1.", "blocks.2.", "blocks.3.")
    for name, value in before.items():
        if name.startswith(lower) or "running_" in name:
            assert torch.equal(trained[name], value), name
    moved = [
        name
        for name, value in before.items()
        if name.startswith(("asp.", "fc."))
        and "running_" not in name
        and not torch.equal(trained[name], value)
    ]
    assert moved, "the upper stages did not train"
    adversary = hparams["adversary"].state_dict()
    head_moved = any(
        not torch.equal(adversary[k], head[k])
        for k in head
        if "running" not in k
    )
    assert head_moved == (yaml == "ser_ecapa_voxceleb_adversarial.yaml")


def test_centred_backend_is_scored_beside_the_head(
    recipe, tiny_corpus, tmp_path, capsys, monkeypatch
):
    """``centred_backend`` (on by default) scores a logistic regression on
    the run's embeddings as they are and speaker-centred; re-scoring a
    finished run without it leaves the head's scores as they were, no
    utterance is embedded twice, and the summary and the comparison get
    the columns."""
    plain, out = tmp_path / "plain", tmp_path / "centred"
    argv = _argv(
        "ser_baseline.yaml",
        tiny_corpus,
        plain,
        "--number_of_epochs=1",
        "--centred_backend=False",
    )
    recipe.main(argv)
    shutil.copytree(plain, out)
    first = json.loads((out / "eval" / "report.json").read_text())
    assert "centred" not in first
    argv = _argv(
        "ser_baseline.yaml",
        tiny_corpus,
        out,
        "--number_of_epochs=1",
        "--centred_backend=True",
    )
    embedded = []

    def counting(rows, *args, **kwargs):
        embedded.extend(row["ID"] for row in rows)
        return extract_embeddings(rows, *args, **kwargs)

    monkeypatch.setattr(report_module, "extract_embeddings", counting)
    summary = _load("evaluate").main(argv)
    (train_csv,) = out.rglob("*_train.csv")
    train = read_manifest(str(train_csv))
    assert len(embedded) == len(set(embedded)) > len(train)
    again = json.loads((out / "eval" / "report.json").read_text())
    centred, uncentred = again.pop("centred"), again.pop("uncentred")
    assert again == first
    for scores in (centred, uncentred):
        assert set(scores) >= {"ua", "wa", "macro_f1", "per_class"}
        assert scores["n"] == first["n"]
    assert summary["summary"]["centred_ua"]["mean"] == centred["ua"]
    assert summary["summary"]["uncentred_ua"]["mean"] == uncentred["ua"]
    assert "UA LR centred" in (out / "report.md").read_text()
    assert "centred on each speaker" in (out / "eval" / "report.md").read_text()
    compare = _load("compare")
    capsys.readouterr()
    compare.main([f"plain={plain}", f"centred={out}"])
    table = capsys.readouterr().out
    assert "UA LR centred" in table
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| plain") and rows[1].endswith("| - |")
    assert not rows[2].endswith("| - |")
    compare.main([f"plain={plain}"])
    assert "UA LR" not in capsys.readouterr().out
