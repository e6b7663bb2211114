"""The emotion recipe on a frozen encoder's layers: a run end to end, the
dev-only choice, enrolment, and the export that SpeechBrain runs."""

import csv
import json
import logging
import os
import shutil
import tempfile

import numpy as np
import pytest
import soundfile
import torch
from fake_corpora import TINY_ECAPA
from recipe_scripts import load_recipe
from sklearn.metrics import balanced_accuracy_score

from emotion_invariant.data.manifest import (
    read_manifest,
    resolve_wav,
    write_manifest,
)
from emotion_invariant.emotion.enrolment import enrolment_rows
from emotion_invariant.models.pretrained import save_encoder

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESET = os.path.join(
    ROOT, "hparams", "emotion_recognition", "ser_ecapa_frozen_layers.yaml"
)


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


@pytest.fixture(scope="module")
def encoder_file(tmp_path_factory):
    """A tiny ECAPA-TDNN saved as a pretraining would save it."""
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    torch.manual_seed(0)
    model = ECAPA_TDNN(
        24,
        channels=[16, 16, 16, 16, 48],
        attention_channels=8,
        lin_neurons=16,
    )
    path = tmp_path_factory.mktemp("encoder") / "encoder.ckpt"
    save_encoder(model, path)
    return str(path)


def _argv(corpus, out, encoder, *extra):
    return [
        PRESET,
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        *TINY_ECAPA,
        "--emo_hidden=16",
        "--adv_hidden=16",
        f"--pretrained_encoder={encoder}",
        "--layer_dim=8",
        "--fold=2",
        "--n_folds=3",
        *extra,
    ]


def _selection(run):
    with open(run / "selection.json", encoding="utf-8") as f:
        return json.load(f)


def test_debug_run_end_to_end(recipe, tiny_corpus, encoder_file, tmp_path):
    summary = recipe.main(
        _argv(
            tiny_corpus,
            tmp_path,
            encoder_file,
            "--debug",
            "--select_grid={head_type: [linear, mlp]}",
            "--adv_weight=1",
            "--grl_lambda=0.5",
            "--speaker_means_weight=1",
        )
    )
    run = tmp_path / "fold_2"
    report = json.loads((run / "eval" / "report.json").read_text())
    info = report["frozen_layers"]
    points = _selection(run)["points"]
    assert [p["name"] for p in points] == [
        "linear-all-lr0.001",
        "mlp-all-lr0.001",
    ]
    (chosen,) = [p for p in points if p["chosen"]]
    assert chosen["dev_ua"] == max(p["dev_ua"] for p in points)
    assert report["best_dev_ua"] == chosen["dev_ua"]
    assert info["point"] == chosen["point"]
    assert "speaker_norm none" in report["title"]
    assert set(info["layer_weights"]) == {
        "block0",
        "block1",
        "block2",
        "block3",
        "mfa",
        "embedding",
    }
    with open(run / "eval" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert report["n"] == len(rows)
    assert report["ua"] == pytest.approx(
        balanced_accuracy_score(
            [r["emo"] for r in rows], [r["predicted"] for r in rows]
        )
    )
    log = (run / "train_log.txt").read_text()
    assert "train adv_ce" in log  # the adversary on the weighted features
    assert "train speaker_share" in log  # and the speaker mean matching
    assert log.count("grid point:") == 2
    assert "speaker_norm none" in summary["title"]
    assert (tmp_path / "selection.md").is_file()
    assert 0 <= report["probe"]["accuracy"] <= 1


def _poisoned_copy(corpus, out, test_speakers):
    """The corpus with the test speakers' audio replaced by noise and their
    emotion labels shifted: what a choice that read them would notice."""
    shutil.copytree(corpus, out)
    rows = read_manifest(os.path.join(out, "synth.csv"))
    labels = sorted({row["emo"] for row in rows})
    rng = np.random.default_rng(0)
    for row in rows:
        if row["spk_id"] in test_speakers:
            row["emo"] = labels[(labels.index(row["emo"]) + 1) % len(labels)]
            row["emo_raw"] = row["emo"]
            path = resolve_wav(row["wav"], str(out))
            info = soundfile.info(path)
            noise = 0.3 * rng.standard_normal(info.frames)
            soundfile.write(path, noise, info.samplerate)
    write_manifest(rows, os.path.join(out, "synth.csv"))


def test_dev_only_choice_never_reads_the_test_speakers(
    recipe, tiny_corpus, encoder_file, tmp_path
):
    # the preset's dropout would leave a 2-epoch tiny head predicting one
    # emotion for every utterance, poisoned or not
    extra = (
        "--number_of_epochs=2",
        "--select_grid={lr: [0.001, 0.01]}",
        "--feature_dropout=0.0",
        "--emo_dropout=0.2",
    )
    clean = tmp_path / "clean"
    recipe.main(_argv(tiny_corpus, clean, encoder_file, *extra))
    test_rows = read_manifest(clean / "fold_2" / "manifests" / "test.csv")
    test_speakers = {row["spk_id"] for row in test_rows}
    poisoned_corpus = tmp_path / "poisoned_corpus"
    _poisoned_copy(tiny_corpus, poisoned_corpus, test_speakers)
    poisoned = tmp_path / "poisoned"
    recipe.main(_argv(poisoned_corpus, poisoned, encoder_file, *extra))
    assert (
        _selection(poisoned / "fold_2")["points"]
        == _selection(clean / "fold_2")["points"]
    )
    reports = [
        json.loads((run / "fold_2" / "eval" / "report.json").read_text())
        for run in (clean, poisoned)
    ]
    # the poison reached the test speakers' evaluation
    assert reports[0]["confusion"] != reports[1]["confusion"]
    assert (
        reports[0]["frozen_layers"]["point"]
        == (reports[1]["frozen_layers"]["point"])
    )


@pytest.fixture(scope="module")
def enrolled_run(recipe, tiny_corpus, encoder_file, tmp_path_factory):
    """A centred run whose test speakers are enrolled with 4 utterances."""
    out = tmp_path_factory.mktemp("enrolled")
    rows = read_manifest(os.path.join(tiny_corpus, "synth.csv"))
    enrol = out / "enrol.csv"
    write_manifest(enrolment_rows(rows, 4, seed=0), enrol)
    recipe.main(
        _argv(
            tiny_corpus,
            out / "run",
            encoder_file,
            "--number_of_epochs=2",
            "--speaker_norm=centre",
            "--speaker_stats=enrolment",
            f"--enrol_manifest={enrol}",
            "--layers_lr_c=1.0",
        )
    )
    return out / "run" / "fold_2", enrol


def test_enrolment_utterances_give_the_statistics_and_are_not_scored(
    enrolled_run,
):
    run, enrol = enrolled_run
    report = json.loads((run / "eval" / "report.json").read_text())
    assert "test statistics from enrolment utterances" in report["title"]
    enrol_ids = {
        row["ID"] for row in read_manifest(enrol, allow_empty_emo=True)
    }
    with open(run / "eval" / "predictions.csv", newline="") as f:
        scored = {row["ID"] for row in csv.DictReader(f)}
    test = {row["ID"] for row in read_manifest(run / "manifests" / "test.csv")}
    assert scored == test - enrol_ids and scored
    assert report["frozen_layers"]["enrolment_excluded"] == len(
        test & enrol_ids
    )
    assert report["centred"]["statistics"] == "enrolment"
    # the linear reference on the head's own input is scored and reported
    assert report["layers_lr"]["c"] == 1.0
    assert 0.0 <= report["layers_lr"]["ua"] <= 1.0
    assert (
        "Logistic regression on the head's input"
        in (run / "eval" / "report.md").read_text()
    )
    # only the chosen point's best checkpoint is kept
    chosen = [p["name"] for p in _selection(run)["points"] if p["chosen"]]
    assert [p.name for p in (run / "save").iterdir()] == chosen
    assert len(list((run / "save" / chosen[0]).glob("CKPT+*"))) == 1
    # the same model with the scored utterances' own statistics, beside
    assert set(report["frozen_layers"]["transductive"]) == {
        "ua",
        "wa",
        "macro_f1",
    }


def test_test_time_speed_copies_are_centred_on_their_own_enrolment(
    enrolled_run, recipe, tiny_corpus, encoder_file, tmp_path
):
    from emotion_invariant.emotion.layer_run import LayerData, speed_copies

    run, enrol = enrolled_run
    before = json.loads((run / "eval" / "report.json").read_text())
    copy = tmp_path / "run"
    shutil.copytree(run.parent, copy)
    settings = [
        "--number_of_epochs=2",
        "--speaker_norm=centre",
        "--speaker_stats=enrolment",
        f"--enrol_manifest={enrol}",
        "--test_speed_perturb=[0.9, 1.1]",
    ]
    _load("evaluate").main(_argv(tiny_corpus, copy, encoder_file, *settings))
    report = json.loads((copy / "fold_2" / "eval" / "report.json").read_text())
    info = report["frozen_layers"]
    assert info["test_speed_perturb"] == [0.9, 1.1]
    assert "test-time speed copies 0.9, 1.1" in report["title"]
    # the utterances alone score as the run without the copies did
    assert info["originals_only"]["ua"] == pytest.approx(before["ua"])
    with open(copy / "fold_2" / "eval" / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert report["ua"] == pytest.approx(
        balanced_accuracy_score(
            [r["emo"] for r in rows], [r["predicted"] for r in rows]
        )
    )
    assert (
        "Test-time augmentation"
        in (copy / "fold_2" / "eval" / "report.md").read_text()
    )
    # each copy is centred on the mean of its speaker's enrolment copies
    argv = _argv(tiny_corpus, tmp_path / "data", encoder_file, *settings)
    hparams, _ = recipe.start_run(argv, "2", recipe.check_emotion_settings)
    data = LayerData(hparams, progress=False)
    test = data.test()
    speakers = np.array([row["spk_id"] for row in test["rows"]])
    enrolled = np.array([row["spk_id"] for row in test["enrol_rows"]])
    for k, speed in enumerate((0.9, 1.1)):
        assert test["copies"][k]["speed"] == speed
        raw = data.compute(speed_copies(test["rows"], [speed]))
        enrol_raw = data.compute(speed_copies(test["enrol_rows"], [speed]))
        assert not torch.allclose(raw, test["features"])
        for name in set(speakers):
            mean = enrol_raw[enrolled == name].double().mean(0)
            expected = raw[speakers == name].double() - mean
            got = test["copies"][k]["normalised"][speakers == name].double()
            assert torch.allclose(got, expected, atol=1e-5)


def test_export_classifies_with_the_enrolled_speakers_statistics(
    enrolled_run, tiny_corpus, tmp_path, no_network, caplog
):
    from speechbrain.inference.classifiers import EncoderClassifier

    from emotion_invariant.emotion.layer_model import enrol_speaker
    from emotion_invariant.models.export import export

    run, enrol = enrolled_run
    out = tmp_path / "model"
    export(run, out)
    with tempfile.TemporaryDirectory() as savedir:
        model = EncoderClassifier.from_hparams(
            source=str(out), savedir=savedir, run_opts={"device": "cpu"}
        )
    assert model.mods.embedding_model.speaker_norm == "centre"
    enrol_rows = read_manifest(enrol, allow_empty_emo=True)
    wav_of = {
        row["ID"]: resolve_wav(row["wav"], str(tiny_corpus))
        for row in read_manifest(run / "manifests" / "test.csv")
    }
    with open(run / "eval" / "predictions.csv", newline="") as f:
        predictions = list(csv.DictReader(f))
    with pytest.raises(RuntimeError, match="enrol the speaker first"):
        model.classify_file(wav_of[predictions[0]["ID"]])
    scores = {}
    for spk in sorted({row["spk_id"] for row in predictions}):
        files = [
            resolve_wav(r["wav"], str(tiny_corpus))
            for r in enrol_rows
            if r["spk_id"] == spk
        ]
        assert enrol_speaker(model, files, spk) == 4
        for row in predictions:
            if row["spk_id"] == spk:
                probs, _, _, label = model.classify_file(wav_of[row["ID"]])
                assert label[0] == row["predicted"], row
                scores[row["ID"]] = probs
    # another speaker's statistics give other scores: the centring acts
    first = predictions[0]
    other = next(r for r in predictions if r["spk_id"] != first["spk_id"])
    enrol_speaker(
        model,
        [
            wav_of[r["ID"]]
            for r in predictions
            if r["spk_id"] == other["spk_id"]
        ],
    )
    probs = model.classify_file(wav_of[first["ID"]])[0]
    assert not torch.allclose(probs, scores[first["ID"]])
    # one utterance: the training speakers' average, with a warning
    with caplog.at_level(logging.WARNING):
        enrol_speaker(model, [wav_of[first["ID"]]], "lone")
    assert "'lone'" in caplog.text
    readme = (out / "README.md").read_text()
    assert "speaker_norm: centre" in readme


def test_settings_that_cannot_work_are_refused_before_training(
    recipe, tiny_corpus, encoder_file, tmp_path
):
    cases = {
        "speaker_stats: enrolment takes": ["--speaker_norm=centre"]
        + ["--speaker_stats=enrolment"],
        "'epochs' is not a grid key": ["--select_grid={epochs: [3]}"],
        "layer_set .top. is not a key": ["--select_grid={layer_set: [top]}"],
        "a random encoder": ["--norm_type=global"],
        "no such file": ["--enrol_manifest=/nowhere/enrol.csv"],
        "speaker_means_weight: -1": ["--speaker_means_weight=-1"],
    }
    cases["test_speed_perturb: \\[0.9, 0.9\\]"] = [
        "--test_speed_perturb=[0.9, 0.9]"
    ]
    cases["only the frozen-layer head"] = ["--frozen_layers=false"] + [
        "--speaker_means_weight=1"
    ]
    cases["test_speed_perturb: only the frozen"] = ["--frozen_layers=false"] + [
        "--test_speed_perturb=[0.9]"
    ]
    for i, (message, extra) in enumerate(cases.items()):
        out = tmp_path / str(i)
        with pytest.raises(ValueError, match=message):
            encoder = "null" if "random" in message else encoder_file
            recipe.main(_argv(tiny_corpus, out, encoder, *extra))
        assert not (out / "fold_2").exists()


def test_evaluation_refuses_an_enrolment_without_a_test_speaker(
    enrolled_run, tiny_corpus, encoder_file, tmp_path
):
    run, enrol = enrolled_run
    test_speakers = {
        row["spk_id"] for row in read_manifest(run / "manifests" / "test.csv")
    }
    rows = read_manifest(enrol, allow_empty_emo=True)
    missing = sorted(test_speakers)[0]
    partial = tmp_path / "partial.csv"
    write_manifest([r for r in rows if r["spk_id"] != missing], partial)
    before = (run / "eval" / "report.json").read_text()
    with pytest.raises(ValueError, match=f"test speaker\\(s\\) '{missing}'"):
        _load("evaluate").main(
            _argv(
                tiny_corpus,
                run.parent,
                encoder_file,
                "--number_of_epochs=2",
                "--speaker_norm=centre",
                "--speaker_stats=enrolment",
                f"--enrol_manifest={partial}",
            )
        )
    assert (run / "eval" / "report.json").read_text() == before


def test_export_refuses_an_encoder_that_changed_since_training(
    enrolled_run, tmp_path
):
    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    from emotion_invariant.models.export import ExportError, export

    run, _ = enrolled_run
    copy = tmp_path / "run"
    shutil.copytree(run.parent, copy)
    other = tmp_path / "other.ckpt"
    torch.manual_seed(5)
    save_encoder(
        ECAPA_TDNN(
            24,
            channels=[16, 16, 16, 16, 48],
            attention_channels=8,
            lin_neurons=16,
        ),
        other,
    )
    config = copy / "hyperparams.yaml"
    text = config.read_text()
    line = next(
        x for x in text.splitlines() if x.startswith("pretrained_encoder:")
    )
    config.write_text(text.replace(line, f"pretrained_encoder: {other}"))
    with pytest.raises(ExportError, match="not the encoder the run's features"):
        export(copy / "fold_2", tmp_path / "model")
    # no model folder, no temporary one
    assert {p.name for p in tmp_path.iterdir()} == {"run", "other.ckpt"}


def test_speed_copies_train_as_speakers_of_their_own(
    recipe, tiny_corpus, encoder_file, tmp_path
):
    from emotion_invariant.emotion.layer_run import LayerData

    argv = _argv(
        tiny_corpus,
        tmp_path / "run",
        encoder_file,
        "--train_speed_perturb=[0.9, 1.1]",
        "--speaker_norm=centre",
    )
    hparams, _ = recipe.start_run(argv, "2", recipe.check_emotion_settings)
    data = LayerData(hparams, progress=False)
    originals = data.parts["train"]
    assert data.training_size() == 3 * len(originals)
    dataset = data.dataset("train")
    assert len(dataset) == 3 * len(originals)
    items = {item["id"]: item for item in dataset}
    for row in originals:  # a copy is its original's speaker and emotion
        for speed in (0.9, 1.1):
            copy = items[f"{row['ID']}@{speed}"]
            assert copy["spk_encoded"] == items[row["ID"]]["spk_encoded"] >= 0
            assert copy["emo_encoded"] == items[row["ID"]]["emo_encoded"]
            assert not torch.equal(copy["feats"], items[row["ID"]]["feats"])
    # each copy of a speaker is centred on its own utterances
    spk = np.array(data.spk("train_speed"))
    assert len(set(spk)) == 2 * len({row["spk_id"] for row in originals})
    for name in set(spk):
        mean = data.normalised["train_speed"][spk == name].double().mean(0)
        assert mean.abs().max() < 1e-4
    # speaker mean matching counts a copy as its original's speaker
    features, speakers = data.speaker_set()
    assert len(features) == len(speakers) == 3 * len(originals)
    order = originals + data.speed_rows
    assert [data.speakers[i] for i in speakers.tolist()] == [
        row.get("speaker_of", row["spk_id"]) for row in order
    ]
    assert torch.equal(features[: len(originals)], data.normalised["train"])
    with pytest.raises(ValueError, match="train_speed_perturb"):
        recipe.start_run(
            _argv(
                tiny_corpus,
                tmp_path / "bad",
                encoder_file,
                "--train_speed_perturb=[1.0]",
            ),
            "2",
            recipe.check_emotion_settings,
        )
