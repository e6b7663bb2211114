"""Tests for the offline pretrained-ECAPA loader."""

import logging
import os
import time

import pytest
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.checkpoints import Checkpointer

from emotion_invariant.models.pretrained import (
    PretrainedError,
    load_pretrained_ecapa,
    resolve_checkpoint_dir,
)

FEATS, EMB = 12, 8

HYPERPARAMS = """\
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: 80
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
"""


def make_models(seed, speakers=3):
    torch.manual_seed(seed)
    embedding = ECAPA_TDNN(
        FEATS,
        channels=[16, 16, 16, 16, 48],
        lin_neurons=EMB,
        attention_channels=8,
        se_channels=8,
    )
    classifier = Classifier(EMB, lin_neurons=EMB, out_neurons=speakers)
    return embedding.eval(), classifier.eval()


def make_norm(seed):
    torch.manual_seed(seed)
    norm = InputNormalization(norm_type="global", std_norm=False)
    norm(torch.randn(6, 1, EMB) + seed, torch.ones(6))
    return norm.eval()


def make_encoder(speakers):
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(speakers)
    return encoder


pytestmark = pytest.mark.usefixtures("no_network")


@pytest.fixture
def published(tmp_path):
    """A folder laid out like SpeechBrain's published ECAPA model."""
    embedding, classifier = make_models(0)
    norm = make_norm(0)
    folder = tmp_path / "ecapa"
    folder.mkdir()
    (folder / "hyperparams.yaml").write_text(HYPERPARAMS)
    torch.save(embedding.state_dict(), folder / "embedding_model.ckpt")
    torch.save(classifier.state_dict(), folder / "classifier.ckpt")
    norm._save(folder / "mean_var_norm_emb.ckpt")
    make_encoder(["id1", "id2", "id3"]).save(folder / "label_encoder.txt")
    return folder, embedding, classifier, norm


def outputs(embedding, classifier, feats):
    with torch.no_grad():
        emb = embedding(feats)
        return emb, classifier(emb)


def test_published_folder_loads_and_matches(published):
    folder, embedding, classifier, norm = published
    fresh_emb, fresh_cls = make_models(1)
    fresh_norm = InputNormalization(norm_type="global", std_norm=False)
    encoder = CategoricalEncoder()
    feats = torch.randn(2, 30, FEATS)
    assert not torch.allclose(fresh_emb(feats), embedding(feats))
    result = load_pretrained_ecapa(
        folder, fresh_emb, fresh_cls, fresh_norm.eval(), encoder
    )
    assert result == {
        "path": str(folder),
        "loaded": [
            "embedding_model",
            "classifier",
            "mean_var_norm_emb",
            "label_encoder",
        ],
        "skipped": [],
    }
    for got, want in zip(
        outputs(fresh_emb, fresh_cls, feats),
        outputs(embedding, classifier, feats),
    ):
        assert torch.equal(got, want)
    emb = torch.randn(4, 1, EMB)
    assert torch.equal(fresh_norm(emb, torch.ones(4)), norm(emb, torch.ones(4)))
    assert encoder.decode_ndim([0, 1, 2]) == ["id1", "id2", "id3"]


def test_only_given_objects_need_files(published):
    folder = published[0]
    os.remove(folder / "classifier.ckpt")
    os.remove(folder / "label_encoder.txt")
    embedding, _ = make_models(2)
    assert load_pretrained_ecapa(folder, embedding)["loaded"] == [
        "embedding_model"
    ]


def test_missing_folder_and_files(published, tmp_path):
    folder = published[0]
    embedding, classifier = make_models(1)
    with pytest.raises(PretrainedError, match="folder not found: .*nowhere"):
        load_pretrained_ecapa(tmp_path / "nowhere", embedding)
    os.remove(folder / "classifier.ckpt")
    with pytest.raises(PretrainedError) as err:
        load_pretrained_ecapa(folder, embedding, classifier)
    message = str(err.value)
    assert "classifier.ckpt not found" in message
    assert "embedding_model.ckpt, hyperparams.yaml" in message
    os.remove(folder / "embedding_model.ckpt")
    with pytest.raises(PretrainedError, match="no embedding_model.ckpt"):
        load_pretrained_ecapa(folder, embedding)


def test_corrupt_files_fail_clearly(published):
    folder = published[0]
    embedding, classifier = make_models(1)
    before = {k: v.clone() for k, v in embedding.state_dict().items()}
    (folder / "classifier.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(PretrainedError, match="cannot read .*classifier.ckpt"):
        load_pretrained_ecapa(folder, embedding, classifier)
    # nothing was loaded: the embedding model is as it was
    for key, value in embedding.state_dict().items():
        assert torch.equal(value, before[key])
    torch.save([1, 2, 3], folder / "classifier.ckpt")
    with pytest.raises(PretrainedError, match="expected a state dict"):
        load_pretrained_ecapa(folder, embedding, classifier)
    torch.save({"count": 3}, folder / "mean_var_norm_emb.ckpt")
    with pytest.raises(PretrainedError, match="missing glob_mean, glob_std"):
        load_pretrained_ecapa(folder, embedding, mean_var_norm_emb=make_norm(1))
    (folder / "label_encoder.txt").write_text("'a' => 0\n'b' =>\n")
    with pytest.raises(PretrainedError, match="label_encoder.txt"):
        load_pretrained_ecapa(
            folder, embedding, label_encoder=CategoricalEncoder()
        )


def test_shape_mismatch_names_tensor_and_shapes(published):
    folder = published[0]
    torch.manual_seed(0)
    wider = ECAPA_TDNN(
        FEATS + 4,
        channels=[16, 16, 16, 16, 48],
        lin_neurons=EMB,
        attention_channels=8,
        se_channels=8,
    )
    with pytest.raises(PretrainedError) as err:
        load_pretrained_ecapa(folder, wider)
    assert (
        f"blocks.0.conv.conv.weight: checkpoint (16, {FEATS}, 5) vs model "
        f"(16, {FEATS + 4}, 5)" in str(err.value)
    )


def test_classifier_mismatch_can_be_skipped(published, caplog):
    folder, embedding, _, _ = published
    fresh_emb, other_cls = make_models(1, speakers=5)
    init = other_cls.weight.detach().clone()
    with pytest.raises(PretrainedError, match=r"weight: checkpoint \(3, 8\)"):
        load_pretrained_ecapa(folder, fresh_emb, other_cls)
    with caplog.at_level(logging.WARNING):
        result = load_pretrained_ecapa(
            folder, fresh_emb, other_cls, skip_classifier_mismatch=True
        )
    assert result["loaded"] == ["embedding_model"]
    assert result["skipped"] == ["classifier"]
    assert torch.equal(other_cls.weight, init)
    assert "left at its initial values" in caplog.text
    feats = torch.randn(1, 20, FEATS)
    with torch.no_grad():
        assert torch.equal(fresh_emb(feats), embedding(feats))


def test_missing_and_unexpected_keys(published, caplog):
    folder, embedding, _, _ = published
    state = embedding.state_dict()
    state["extra.weight"] = torch.zeros(1)
    dropped = state.pop("fc.conv.weight")
    torch.save(state, folder / "embedding_model.ckpt")
    fresh, _ = make_models(1)
    with pytest.raises(PretrainedError) as err:
        load_pretrained_ecapa(folder, fresh)
    assert "missing key(s) fc.conv.weight" in str(err.value)
    assert "unexpected key(s) extra.weight" in str(err.value)
    with caplog.at_level(logging.WARNING):
        load_pretrained_ecapa(folder, fresh, strict=False)
    assert "strict=False" in caplog.text
    assert torch.equal(
        fresh.blocks[0].conv.conv.weight, state["blocks.0.conv.conv.weight"]
    )
    assert not torch.equal(fresh.fc.conv.weight, dropped)


def test_checkpointer_folder(tmp_path):
    save = tmp_path / "save"
    embedding, classifier = make_models(0)
    checkpointer = Checkpointer(
        save, {"embedding_model": embedding, "classifier": classifier}
    )
    make_encoder(["a", "b", "c"]).save(save / "label_encoder.txt")
    states, paths = [], []
    for eer in (5.0, 3.0, 4.0):
        with torch.no_grad():
            embedding.fc.conv.weight.add_(1.0)
        states.append(embedding.fc.conv.weight.detach().clone())
        paths.append(str(checkpointer.save_checkpoint(meta={"EER": eer}).path))
        time.sleep(0.01)

    fresh, fresh_cls = make_models(1)
    encoder = CategoricalEncoder()
    newest = load_pretrained_ecapa(save, fresh, fresh_cls, None, encoder)
    assert torch.equal(fresh.fc.conv.weight, states[2])
    assert newest["path"] == paths[2]
    assert len(encoder) == 3
    best = load_pretrained_ecapa(save, fresh, min_key="EER")
    assert torch.equal(fresh.fc.conv.weight, states[1])
    assert best["path"] == paths[1]
    load_pretrained_ecapa(best["path"], fresh, max_key="EER")
    assert torch.equal(fresh.fc.conv.weight, states[1])  # a direct CKPT dir
    assert str(resolve_checkpoint_dir(save, max_key="EER")) == paths[0]
    with pytest.raises(PretrainedError, match="with meta key 'WER'"):
        load_pretrained_ecapa(save, fresh, min_key="WER")
    with pytest.raises(PretrainedError, match="mean_var_norm_emb.ckpt not"):
        load_pretrained_ecapa(save, fresh, mean_var_norm_emb=make_norm(0))


def test_bad_checkpoint_metadata(tmp_path):
    ckpt = tmp_path / "CKPT+broken"
    ckpt.mkdir()
    (ckpt / "CKPT.yaml").write_text("end-of-epoch: [unclosed\n")
    with pytest.raises(PretrainedError, match="cannot read the checkpoint"):
        load_pretrained_ecapa(tmp_path, make_models(0)[0])


def test_custom_names(published):
    folder = published[0]
    os.rename(folder / "classifier.ckpt", folder / "head.ckpt")
    embedding, classifier = make_models(1)
    result = load_pretrained_ecapa(
        folder, embedding, classifier, names={"classifier": "head.ckpt"}
    )
    assert result["loaded"] == ["embedding_model", "classifier"]
    with pytest.raises(PretrainedError, match="unknown role"):
        load_pretrained_ecapa(folder, embedding, names={"head": "x"})


@pytest.mark.parametrize("where", ["out", "parent"])
def test_acquire_into_a_file_fails_before_copying(
    tmp_path, capsys, monkeypatch, where
):
    """``--out`` naming a file (or a folder under one) is refused before
    a byte is copied or hashed (the real model is 90 MB); the file is left
    as it was."""
    from emotion_invariant.models import acquire as acq

    src = tmp_path / "hub"
    src.mkdir()
    (src / "a.ckpt").write_bytes(b"abc")
    pins = {"a.ckpt": (3, acq.hashlib.sha256(b"abc").hexdigest())}
    taken = tmp_path / "taken"
    taken.write_text("mine")
    out = taken if where == "out" else taken / "model"
    copied = []
    original = acq._from_folder

    def spy(*args):
        copied.append(args)
        return original(*args)

    monkeypatch.setattr(acq, "_from_folder", spy)
    with pytest.raises(acq.AcquireError) as err:
        acq.acquire(str(out), from_folder=str(src), files=pins)
    assert str(err.value).startswith(f"{out}: ")
    assert "not a folder" in str(err.value)
    assert copied == []
    assert taken.read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hub", "taken"]
    assert acq.main(["--out", str(out), "--from-folder", str(src)]) == 1
    assert capsys.readouterr().err.startswith(f"error: {out}: ")
