"""Frozen layer features of an ECAPA-TDNN, their cache, the layer head and
per-speaker normalisation."""

import logging
import os

import numpy as np
import pytest
import soundfile
import torch
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.processing.features import InputNormalization

from emotion_invariant.emotion import layer_features as lf
from emotion_invariant.emotion.layer_head import LayerHead
from emotion_invariant.emotion.speaker_norm import SpeakerStatistics

SETTINGS = {"sample_rate": 16000, "n_mels": 8, "norm_type": "sentence"}


def _modules(seed=0):
    torch.manual_seed(seed)
    return {
        "compute_features": Fbank(n_mels=8),
        "mean_var_norm": InputNormalization(
            norm_type="sentence", std_norm=False
        ),
        "embedding_model": ECAPA_TDNN(
            8,
            channels=[8, 8, 8, 8, 24],
            lin_neurons=4,
            attention_channels=4,
            se_channels=4,
            res2net_scale=2,
        ).eval(),
    }


def _rows(folder, n=3):
    os.makedirs(folder, exist_ok=True)
    rows = []
    rng = np.random.default_rng(0)
    for i in range(n):
        path = os.path.join(folder, f"u{i}.wav")
        soundfile.write(path, 0.1 * rng.standard_normal(3200 + 800 * i), 16000)
        rows.append({"ID": f"u{i}", "wav": path, "duration": 0.2 + 0.05 * i})
    return rows


@pytest.fixture
def counted(monkeypatch):
    """Count the utterances put through the encoder."""
    calls = []
    real = lf.layer_statistics

    def counting(modules, wavs, lens):
        calls.append(len(wavs))
        return real(modules, wavs, lens)

    monkeypatch.setattr(lf, "layer_statistics", counting)
    return calls


def test_layers_are_the_encoders_own_outputs():
    modules = _modules()
    wavs = torch.randn(1, 4000)
    lens = torch.ones(1)
    with torch.no_grad():
        feats = lf.layer_statistics(modules, wavs, lens)
        fbank = modules["mean_var_norm"](
            modules["compute_features"](wavs), lens
        )
        model = modules["embedding_model"]
        embedding = model(fbank, lens).reshape(1, -1)
        mfa_in = []
        hook = model.mfa.register_forward_hook(
            lambda m, i, out: mfa_in.append(out)
        )
        model(fbank, lens)
        hook.remove()
    dims = lf.layer_dims(model)
    assert feats.shape == (1, sum(dims.values()))
    torch.testing.assert_close(feats[:, -4:], embedding)
    start = sum(dims[name] for name in lf.LAYERS[:4])
    mfa = feats[0, start : start + dims["mfa"]]
    torch.testing.assert_close(mfa[:24], mfa_in[0][0].mean(-1))
    torch.testing.assert_close(mfa[24:], mfa_in[0][0].std(-1, unbiased=False))


def test_padding_is_left_out_of_the_statistics():
    x = torch.randn(1, 3, 10)
    padded = torch.cat([x, 100 + torch.zeros(1, 3, 5)], dim=-1)
    torch.testing.assert_close(
        lf.masked_statistics(padded, torch.tensor([10 / 15])),
        lf.masked_statistics(x, torch.ones(1)),
    )


def test_cache_is_reused_and_invalidated(tmp_path, counted):
    rows = _rows(tmp_path / "audio")
    cache = tmp_path / "cache"
    modules = _modules()

    def run(mods):
        return lf.layer_features(
            rows, mods, str(cache), SETTINGS, progress=False
        )

    first = run(modules)
    assert sum(counted) == 3
    again = run(modules)
    assert sum(counted) == 3  # nothing computed again
    torch.testing.assert_close(again, first, rtol=0, atol=0)
    with torch.no_grad():  # another model: every entry computed again
        modules["embedding_model"].fc.conv.bias += 1
    changed = run(modules)
    assert sum(counted) == 6
    assert not torch.equal(changed[:, -4:], first[:, -4:])
    # other audio in the second file: that file alone is computed again
    path = rows[1]["wav"]
    soundfile.write(path, 0.3 * np.ones(4000), 16000)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    rewritten = run(modules)
    assert sum(counted) == 7
    assert torch.equal(rewritten[[0, 2]], changed[[0, 2]])
    assert not torch.equal(rewritten[1], changed[1])
    # another feature setting is another model too
    lf.layer_features(
        rows, modules, str(cache), {**SETTINGS, "n_mels": 9}, progress=False
    )
    assert sum(counted) == 10


def test_speed_copies_are_the_perturbed_audio_and_cached_apart(
    tmp_path, counted
):
    from emotion_invariant.data.audio import read_audio
    from emotion_invariant.emotion.layer_run import speed_copies

    rows = [{**r, "spk_id": "s1"} for r in _rows(tmp_path / "audio", n=2)]
    copies = speed_copies(rows, [0.9])
    modules = _modules()
    cache = str(tmp_path / "cache")
    plain = lf.layer_features(rows, modules, cache, SETTINGS, progress=False)
    fast = lf.layer_features(copies, modules, cache, SETTINGS, progress=False)
    assert sum(counted) == 4  # the copies are not read as the originals
    assert not torch.equal(plain, fast)
    with torch.no_grad():  # each copy: the model on its resampled audio
        signal = read_audio(rows[1])
        slower = torchaudio_resample(signal, 16000, 17800)
        expected = lf.layer_statistics(
            modules, slower.unsqueeze(0), torch.ones(1)
        )[0]
    torch.testing.assert_close(fast[1], expected)
    assert len(slower) > len(signal)  # 0.9: played slower, longer
    before = sum(counted)
    again = lf.layer_features(copies, modules, cache, SETTINGS, progress=False)
    assert sum(counted) == before  # read from the cache
    torch.testing.assert_close(again, fast, rtol=0, atol=0)


def torchaudio_resample(signal, rate, new_rate):
    import torchaudio

    return torchaudio.functional.resample(signal, rate, new_rate)


def test_damaged_entry_is_computed_again(tmp_path, counted, caplog):
    rows = _rows(tmp_path / "audio", n=1)
    modules = _modules()
    cache = str(tmp_path / "cache")
    first = lf.layer_features(rows, modules, cache, SETTINGS, progress=False)
    (entry,) = [p for p in (tmp_path / "cache").rglob("*.pt")]
    entry.write_bytes(b"not a torch file")
    with caplog.at_level(logging.WARNING):
        again = lf.layer_features(rows, modules, cache, SETTINGS)
    assert sum(counted) == 2 and "ignoring" in caplog.text
    torch.testing.assert_close(again, first)
    assert not [p for p in tmp_path.rglob("*.tmp")]


@pytest.mark.parametrize("planted", ["a", "c"])
def test_layer_weights_pick_the_planted_layer(planted):
    gen = torch.Generator().manual_seed(0)
    dims = {"a": 8, "b": 16, "c": 8, "d": 4}
    labels = torch.randint(0, 3, (256,), generator=gen)
    parts = []
    for name, width in dims.items():
        x = 3 * torch.randn(256, width, generator=gen)
        if name == planted:  # the emotion is in this layer alone
            x[:, :3] += 2 * torch.nn.functional.one_hot(labels, 3)
        parts.append(x)
    x = torch.cat(parts, 1)
    torch.manual_seed(0)
    head = LayerHead(dims, list(dims), 3, "linear", dim=8, dropout=0.0)
    head.pooling.set_standardisation(x)
    opt = torch.optim.Adam(head.parameters(), lr=0.01)
    for _ in range(150):
        loss = torch.nn.functional.cross_entropy(head(x), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    weights = head.layer_weights()
    others = [w for name, w in weights.items() if name != planted]
    assert weights[planted] > 1.5 * max(others), weights


def test_feature_dropout_drops_standardised_inputs_in_training_only():
    from emotion_invariant.emotion.layer_head import LayerPooling

    torch.manual_seed(0)
    pool = LayerPooling({"a": 400}, ["a"], dim=400, feature_dropout=0.25)
    x = torch.randn(50, 400) * 3 + 1
    pool.set_standardisation(x)
    with torch.no_grad():  # the projection passes its input through
        pool.projections[0].weight.copy_(torch.eye(400))
        pool.projections[0].bias.zero_()
    standard = (x - x.mean(0)) / x.std(0, unbiased=False)
    out = pool.train()(x).detach()
    dropped = out == 0
    assert abs(dropped.float().mean().item() - 0.25) < 0.02
    torch.testing.assert_close(
        out[~dropped], standard[~dropped] / 0.75, rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(pool.eval()(x), standard, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="feature_dropout"):
        LayerPooling({"a": 4}, ["a"], feature_dropout=1.0)


def test_layer_logistic_reads_only_the_given_layers():
    from emotion_invariant.emotion.layer_eval import layers_logistic

    gen = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 3, (300,), generator=gen)
    x = torch.randn(300, 12, generator=gen)
    x[:, 4:7] += 4 * torch.nn.functional.one_hot(labels, 3)  # columns 4-6
    train, test = (x[:200], labels[:200]), (x[200:], labels[200:])
    inside = layers_logistic(train, test, [(0, 2), (4, 8)], c=1.0)
    outside = layers_logistic(train, test, [(0, 4), (8, 12)], c=1.0)
    assert (inside == test[1].numpy()).mean() > 0.95
    assert (outside == test[1].numpy()).mean() < 0.6


def test_centring_from_enrolment_is_a_per_speaker_mean_subtraction():
    rng = np.random.default_rng(1)
    enrol = rng.normal(size=(12, 5))
    enrol_spk = [f"s{i % 3}" for i in range(12)]
    test = rng.normal(size=(7, 5))
    test_spk = ["s0", "s1", "s2", "s0", "s1", "s2", "s0"]
    norm = SpeakerStatistics("centre").fit(torch.tensor(enrol), enrol_spk)
    got = norm.apply(torch.tensor(test), test_spk).double().numpy()
    expected = test.copy()
    for i, spk in enumerate(test_spk):
        rows = [j for j, s in enumerate(enrol_spk) if s == spk]
        expected[i] -= enrol[rows].mean(axis=0)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    scaled = SpeakerStatistics("centre+scale").fit(
        torch.tensor(enrol), enrol_spk
    )
    got = scaled.apply(torch.tensor(test), test_spk).double().numpy()
    rows = [j for j, s in enumerate(enrol_spk) if s == "s1"]
    np.testing.assert_allclose(
        got[1], (test[1] - enrol[rows].mean(0)) / enrol[rows].std(0), atol=1e-5
    )


def test_one_utterance_speaker_falls_back_with_a_warning(caplog):
    train = torch.tensor([[1.0, 1.0], [3.0, 5.0], [10.0, 0.0], [12.0, 2.0]])
    norm = SpeakerStatistics("centre").fit(train, ["a", "a", "b", "b"])
    test = SpeakerStatistics("centre", norm.population)
    with caplog.at_level(logging.WARNING):
        test.fit(
            torch.tensor([[5.0, 5.0], [0.0, 0.0], [2.0, 2.0]]),
            ["lone", "pair", "pair"],
            "enrolment utterances",
        )
    assert "'lone'" in caplog.text and "'pair'" not in caplog.text
    out = test.apply(torch.tensor([[5.0, 5.0], [0.0, 0.0]]), ["lone", "pair"])
    # lone: the training speakers' average mean (6.5, 2); pair: its own
    torch.testing.assert_close(out, torch.tensor([[-1.5, 3.0], [-1.0, -1.0]]))


def test_global_norm_encoder_brings_its_fbank_statistics(tmp_path):
    from emotion_invariant.emotion.layer_model import load_frozen_encoder

    trained = _modules(seed=1)
    norm = InputNormalization(norm_type="global", std_norm=False).train()
    norm(torch.randn(4, 30, 8) + 3, torch.ones(4))
    folder = tmp_path / "ckpt"
    folder.mkdir()
    torch.save(
        trained["embedding_model"].state_dict(),
        folder / "embedding_model.ckpt",
    )
    fresh = _modules(seed=2)
    with pytest.raises(ValueError, match="no normalizer.ckpt"):
        load_frozen_encoder(
            str(folder),
            fresh["embedding_model"],
            fresh["mean_var_norm"],
            "global",
        )
    norm._save(folder / "normalizer.ckpt")
    loaded = InputNormalization(norm_type="global", std_norm=False)
    load_frozen_encoder(str(folder), fresh["embedding_model"], loaded, "global")
    torch.testing.assert_close(loaded.glob_mean, norm.glob_mean)
    for a, b in zip(
        fresh["embedding_model"].parameters(),
        trained["embedding_model"].parameters(),
    ):
        assert torch.equal(a, b)


def test_enrolment_command(tmp_path, capsys):
    from emotion_invariant.data.manifest import read_manifest, write_manifest
    from emotion_invariant.emotion.enrolment import main

    rows = [
        {
            "ID": f"{s}{i}",
            "duration": 1.0,
            "wav": f"{s}{i}.wav",
            "spk_id": s,
            "emo": ("neu", "ang")[i % 2],
        }
        for s in "ab"
        for i in range(5)
    ]
    manifest = tmp_path / "m.csv"
    write_manifest(rows, manifest)
    out = tmp_path / "enrol.csv"
    assert main([str(manifest), str(out), "--per_speaker", "2"]) == 0
    enrol = read_manifest(out, allow_empty_emo=True)
    assert sorted(r["spk_id"] for r in enrol) == ["a", "a", "b", "b"]
    assert {r["emo"] for r in enrol} == {""}  # unlabelled
    # the draw reads no label: other emotions, the same utterances
    for row in rows:
        row["emo"] = "sad"
    write_manifest(rows, manifest)
    again = tmp_path / "again.csv"
    assert main([str(manifest), str(again), "--per_speaker", "2"]) == 0
    assert [r["ID"] for r in read_manifest(again, allow_empty_emo=True)] == [
        r["ID"] for r in enrol
    ]
    for argv, message in (
        ([str(manifest), str(manifest)], "the input manifest"),
        (
            [str(manifest), str(tmp_path / "x.csv"), "--per_speaker", "0"],
            "1 or",
        ),
        ([str(tmp_path / "none.csv"), str(tmp_path / "y.csv")], "not found"),
    ):
        assert main(argv) == 1
        assert message in capsys.readouterr().err
    assert (
        not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()
    )
