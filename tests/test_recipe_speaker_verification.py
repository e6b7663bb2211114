"""Smoke runs of the speaker-verification recipe on the tiny corpus."""

import importlib.util
import json
import os
from collections import Counter

import pytest
import speechbrain as sb
import torch
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from emotion_invariant.pretrained import PretrainedError
from emotion_invariant.scoring import load_embeddings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "speaker_verification")
HPARAMS = os.path.join(ROOT, "hparams", "speaker_verification")
TINY_MODEL = [
    "--channels=[16, 16, 16, 16, 48]",
    "--attention_channels=8",
    "--lin_neurons=16",
    "--n_mels=24",
    "--batch_size=4",
    "--eval_batch_size=8",
]


def _recipe():
    spec = importlib.util.spec_from_file_location(
        "sv_train", os.path.join(RECIPE, "train.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(yaml, corpus, out, *extra):
    argv = [
        os.path.join(HPARAMS, yaml),
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        *TINY_MODEL,
        *extra,
    ]
    return _recipe().main(argv)


@pytest.mark.parametrize(
    "yaml, extra",
    [
        ("ecapa_baseline.yaml", ()),
        ("ecapa_emotion_invariant.yaml", ()),
        ("ecapa_supcon_aam.yaml", ()),
        ("ecapa_supcon_aam.yaml", ("--aam_weight=0",)),
    ],
)
def test_debug_run(tiny_corpus, tmp_path, yaml, extra):
    report = _run(yaml, tiny_corpus, tmp_path, "--debug", *extra)
    eval_dir = tmp_path / "eval"
    for name in (
        "report.json",
        "report.md",
        "report_det.png",
        "emotion_eer.png",
        "scores.txt",
        "embeddings.npz",
    ):
        assert (eval_dir / name).is_file(), name
    saved = json.loads((eval_dir / "report.json").read_text())
    assert saved["overall"]["eer"] == report["overall"]["eer"]
    assert {"N-N", "N-E", "E-E same", "E-E cross"} <= set(saved["conditions"])
    log = (tmp_path / "train_log.txt").read_text()
    assert "valid EER" in log
    if "emotion_invariant" in yaml:
        assert "train erl" in log and "view_emotion: 1.00" in log
    else:
        assert "train erl" not in log and "view_copy: 1.00" in log
    assert ("train supcon" in log) == ("supcon" in yaml)
    assert ("train aam" in log) == ("--aam_weight=0" not in extra)


class _Interrupt(RuntimeError):
    pass


def _final_state(out):
    """Model and optimizer state of the newest checkpoint."""
    ckpts = sb.utils.checkpoints.Checkpointer(str(out / "save"))
    newest = max(ckpts.list_checkpoints(), key=lambda c: c.meta["unixtime"])
    model = torch.load(newest.path / "embedding_model.ckpt", weights_only=True)
    optim = torch.load(newest.path / "optimizer.ckpt", weights_only=True)
    return model, optim


def test_speaker_batches(tiny_corpus, tmp_path, monkeypatch):
    """``speakers_per_batch`` gives P speakers x K utterances a batch, with
    new batches each epoch."""
    recipe = _recipe()
    seen = []
    original = recipe.SpeakerBrain.on_fit_batch_start

    def record(self, batch, *args):
        seen.append((self.hparams.view_maker.epoch, list(batch.id)))
        return original(self, batch, *args)

    monkeypatch.setattr(recipe.SpeakerBrain, "on_fit_batch_start", record)
    argv = [
        os.path.join(HPARAMS, "ecapa_supcon_aam.yaml"),
        f"--data_folder={tiny_corpus}",
        f"--output_folder={tmp_path}",
        *TINY_MODEL,
        "--number_of_epochs=2",
        "--speakers_per_batch=2",
        "--utterances_per_speaker=3",
    ]
    recipe.main(argv)
    train = recipe.read_manifest(
        str(tmp_path / "manifests" / "synth_train.csv")
    )
    speaker = {row["ID"]: row["spk_id"] for row in train}
    for epoch in (1, 2):
        ids = [uid for e, batch in seen if e == epoch for uid in batch]
        assert sorted(ids) == sorted(speaker)  # each utterance once
    full = [batch for _, batch in seen if len(batch) == 6]
    assert full
    for batch in full:
        counts = Counter(speaker[uid] for uid in batch)
        assert sorted(counts.values()) == [3, 3]
    assert [b for e, b in seen if e == 1] != [b for e, b in seen if e == 2]


@pytest.mark.parametrize("extra", [(), ("--speakers_per_batch=2",)])
def test_resume_after_interrupted_epoch(
    tiny_corpus, tmp_path, monkeypatch, extra
):
    """A run killed mid-epoch and resumed ends where an unbroken run ends,
    augmentation and masking (half the views, drawn at random) and speaker
    batches included."""
    common = (
        "--number_of_epochs=2",
        "--ckpt_interval_steps=1",
        *extra,
    )
    yaml = "ecapa_emotion_invariant.yaml"
    _run(yaml, tiny_corpus, tmp_path / "unbroken", *common)

    recipe = _recipe()
    calls = {"n": 0}
    original = recipe.SpeakerBrain.on_fit_batch_end

    def crash(self, *args):
        original(self, *args)
        calls["n"] += 1
        if calls["n"] == 5:  # mid-way through the second epoch
            raise _Interrupt

    monkeypatch.setattr(recipe.SpeakerBrain, "on_fit_batch_end", crash)
    argv = [
        os.path.join(HPARAMS, yaml),
        f"--data_folder={tiny_corpus}",
        f"--output_folder={tmp_path / 'broken'}",
        *TINY_MODEL,
        *common,
    ]
    with pytest.raises(_Interrupt):
        recipe.main(argv)
    monkeypatch.undo()
    _recipe().main(argv)

    (model_a, optim_a), (model_b, optim_b) = (
        _final_state(tmp_path / name) for name in ("unbroken", "broken")
    )
    steps = {s["step"].item() for s in optim_a["state"].values()}
    assert steps == {s["step"].item() for s in optim_b["state"].values()}
    for key in model_a:
        torch.testing.assert_close(model_a[key], model_b[key], msg=key)
    embeddings = [
        load_embeddings(str(tmp_path / name / "eval" / "embeddings.npz"))
        for name in ("unbroken", "broken")
    ]
    assert embeddings[0][0] == embeddings[1][0]
    torch.testing.assert_close(embeddings[0][1], embeddings[1][1])


def _pretrained_folder(folder):
    model = ECAPA_TDNN(
        24, channels=[16, 16, 16, 16, 48], attention_channels=8, lin_neurons=16
    )
    folder.mkdir()
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    (folder / "hyperparams.yaml").write_text(
        "pretrained_path: speechbrain/spkrec-ecapa-voxceleb\n"
    )
    return model


def test_starts_from_local_pretrained_folder(tiny_corpus, tmp_path):
    """With no epoch to train, test embeddings are the pretrained model's."""
    model = _pretrained_folder(tmp_path / "pretrained")
    out = tmp_path / "run"
    _run(
        "ecapa_baseline.yaml",
        tiny_corpus,
        out,
        "--number_of_epochs=0",
        f"--pretrained_path={tmp_path / 'pretrained'}",
    )
    ids, emb = load_embeddings(str(out / "eval" / "embeddings.npz"))
    from emotion_invariant.data.manifest import read_manifest
    from emotion_invariant.scoring.extract import read_audio

    rows = {
        r["ID"]: r
        for r in read_manifest(str(out / "manifests" / "synth_test.csv"))
    }
    fbank = sb.lobes.features.Fbank(n_mels=24)
    norm = sb.processing.features.InputNormalization(
        norm_type="sentence", std_norm=False
    )
    model.eval()
    longest = max(ids, key=lambda uid: float(rows[uid]["duration"]))
    with torch.no_grad():
        for uid, vector in zip(ids, emb):
            wav = read_audio(rows[uid], str(tiny_corpus))[None]
            lens = torch.ones(1)
            expected = model(norm(fbank(wav), lens), lens).squeeze()
            if uid == longest:  # first of its batch: no padding at all
                torch.testing.assert_close(vector, expected)
            else:  # zero padding in a batch moves the edges slightly
                cos = torch.nn.functional.cosine_similarity(vector, expected, 0)
                assert cos > 0.999, (uid, cos)


def test_corrupt_pretrained_folder_fails_clearly(tiny_corpus, tmp_path):
    folder = tmp_path / "pretrained"
    _pretrained_folder(folder)
    (folder / "embedding_model.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedError, match="embedding_model.ckpt"):
        _run(
            "ecapa_baseline.yaml",
            tiny_corpus,
            tmp_path / "run",
            "--number_of_epochs=0",
            f"--pretrained_path={folder}",
        )
