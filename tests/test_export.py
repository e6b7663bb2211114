"""Export of trained runs to SpeechBrain's published layout, loaded by
SpeechBrain's own inference classes, offline."""

import csv
import importlib.util
import os

import pytest
import torch
from fake_corpora import TINY_ECAPA
from hyperpyyaml import load_hyperpyyaml

from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.models.export import export, main
from emotion_invariant.scoring import load_embeddings
from emotion_invariant.scoring.extract import extract_embeddings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    *TINY_ECAPA,
    "--debug",
    "--debug_persistently",
]
LAYOUT = {
    "hyperparams.yaml",
    "embedding_model.ckpt",
    "classifier.ckpt",
    "mean_var_norm_emb.ckpt",
    "label_encoder.txt",
    "label_encoder.ckpt",
    "README.md",
}


def _train(task, yaml, corpus, out, *extra):
    spec = importlib.util.spec_from_file_location(
        f"export_test_{task}", os.path.join(ROOT, "recipes", task, "train.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(
        [
            os.path.join(ROOT, "hparams", task, yaml),
            f"--data_folder={corpus}",
            f"--output_folder={out}",
            *TINY,
            *extra,
        ]
    )
    return out


@pytest.fixture(scope="module")
def sv_run(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sv_run")
    return _train(
        "speaker_verification", "ecapa_emotion_invariant.yaml", tiny_corpus, out
    )


@pytest.fixture(scope="module")
def ser_run(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ser_run")
    return _train(
        "emotion_recognition",
        "ser_adversarial.yaml",
        tiny_corpus,
        out,
        "--emo_hidden=16",
        "--adv_hidden=16",
        "--max_train_len=1.5",
    )


def test_speaker_model_loads_in_speechbrain(
    sv_run, tiny_corpus, tmp_path, monkeypatch, no_network
):
    """SpeakerRecognition.from_hparams loads the folder with the hub off and
    embeds the test utterances as the recipe's evaluation did."""
    from speechbrain.inference.speaker import SpeakerRecognition

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "model"
    result = export(sv_run, out)
    assert set(os.listdir(out)) == LAYOUT
    model = SpeakerRecognition.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    rows = read_manifest(str(sv_run / "manifests" / "synth_test.csv"))
    ids, emb = extract_embeddings(
        rows,
        model.encode_batch,
        batch_size=8,  # the recipe's eval_batch_size: the same padding
        device="cpu",
        data_root=str(tiny_corpus),
        progress=False,
    )
    ref_ids, ref = load_embeddings(str(sv_run / "eval" / "embeddings.npz"))
    assert list(ids) == list(ref_ids)
    torch.testing.assert_close(emb, torch.as_tensor(ref), atol=1e-5, rtol=1e-4)
    with open(out / "hyperparams.yaml") as f:
        stored = load_hyperpyyaml(f)["threshold"]
    assert stored == pytest.approx(result["threshold"], abs=1e-6)
    assert -1 <= stored <= 1
    card = (out / "README.md").read_text()
    for text in ("synth", "copypaste_prob: 1.0", "erl_weight: 1.0", "| all |"):
        assert text in card
    assert "Apache-2.0" in card


def test_best_and_last_checkpoints(tmp_path):
    """``best`` is the recipe's choice (lowest dev EER, highest dev UA),
    ``last`` the newest."""
    from speechbrain.utils.checkpoints import Checkpointer

    from emotion_invariant.models.export import choose_checkpoint

    saver = Checkpointer(tmp_path / "save", {"m": torch.nn.Linear(1, 1)})
    best = saver.save_checkpoint(meta={"EER": 0.1, "UA": 0.2})
    newest = saver.save_checkpoint(meta={"EER": 0.3, "UA": 0.6})
    assert choose_checkpoint(tmp_path, "best", "speaker") == best.path
    assert choose_checkpoint(tmp_path, "best", "emotion") == newest.path
    assert choose_checkpoint(tmp_path, "last", "speaker") == newest.path


def test_emotion_model_classifies_with_project_labels(
    ser_run, tiny_corpus, tmp_path, monkeypatch, no_network
):
    """EncoderClassifier.classify_file returns this project's emotion labels,
    the predictions the recipe's evaluation wrote."""
    from speechbrain.inference.classifiers import EncoderClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "model"
    export(ser_run, out)
    assert LAYOUT | {"mean_var_norm.ckpt"} == set(os.listdir(out))
    model = EncoderClassifier.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    with open(ser_run / "eval" / "predictions.csv") as f:
        predictions = list(csv.DictReader(f))
    rows = {
        row["ID"]: row
        for row in read_manifest(str(ser_run / "manifests" / "synth_test.csv"))
    }
    for row in predictions:
        wav = rows[row["ID"]]["wav"].replace("$data_root", str(tiny_corpus))
        assert model.classify_file(wav)[3] == [row["predicted"]]


def test_errors_leave_nothing(sv_run, tmp_path, capsys):
    """A bad checkpoint or an existing folder: one error line, exit 1, and
    no folder (temporary or final) left behind."""
    assert main([str(sv_run), str(tmp_path / "m"), "--checkpoint", "x"]) == 1
    assert "error: x: not a checkpoint folder" in capsys.readouterr().err
    assert main([str(tmp_path), str(tmp_path / "m")]) == 1
    assert "no hyperparams.yaml" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    (tmp_path / "taken").mkdir()
    assert main([str(sv_run), str(tmp_path / "taken")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["taken"]
