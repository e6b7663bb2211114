"""A back-end shipped inside a speaker model folder: fitted with ``python -m
emotion_invariant.backend fit --model``, applied by SpeechBrain's own
inference and by the verify command."""

import os

import numpy
import pytest
import soundfile
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

from emotion_invariant.backend import fit, load_backend
from emotion_invariant.backend.fitting import main
from emotion_invariant.data.manifest import read_manifest, write_manifest
from emotion_invariant.models.embedder import embed
from emotion_invariant.models.export import main as export_main
from emotion_invariant.scoring import save_embeddings
from emotion_invariant.scoring.extract import extract_embeddings
from emotion_invariant.verification.verify import SpeakerVerifier
from emotion_invariant.verification.verify import main as verify_main

ENCODER = {
    "channels": [16, 16, 16, 16, 48],
    "attention_channels": 8,
    "lin_neurons": 16,
}
# SpeechBrain's published layout: references, hub paths, no threshold.
PUBLISHED = """n_mels: 24
pretrained_path: speechbrain/spkrec-ecapa-voxceleb
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: !ref <n_mels>
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: !ref <n_mels>
    channels: [16, 16, 16, 16, 48]
    attention_channels: 8
    lin_neurons: 16
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 16
    out_neurons: 2
mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        classifier: !ref <classifier>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        mean_var_norm_emb: !ref <pretrained_path>/mean_var_norm_emb.ckpt
        classifier: !ref <pretrained_path>/classifier.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""
EMOTIONS = ("neu", "ang", "hap", "sad")


@pytest.fixture
def model(tmp_path):
    """A tiny untrained ECAPA-TDNN in SpeechBrain's published layout."""
    torch.manual_seed(0)
    path = tmp_path / "model"
    path.mkdir()
    encoder = ECAPA_TDNN(24, **ENCODER)
    torch.save(encoder.state_dict(), path / "embedding_model.ckpt")
    torch.save(
        Classifier(16, out_neurons=2).state_dict(), path / "classifier.ckpt"
    )
    torch.save(
        {"count": 7, "glob_mean": torch.ones(16), "glob_std": torch.ones(16)},
        path / "mean_var_norm_emb.ckpt",
    )
    labels = CategoricalEncoder()
    labels.update_from_iterable(["a", "b"])
    labels.save(path / "label_encoder.ckpt")
    (path / "hyperparams.yaml").write_text(PUBLISHED)
    return path


def _corpus(folder, speakers=6, per_speaker=4, seed=0):
    """Noise utterances, each speaker's coloured by its own filter; returns
    the manifest's path."""
    rng = numpy.random.default_rng(seed)
    folder.mkdir()
    rows = []
    for s in range(speakers):
        colour = rng.normal(size=8)
        for u in range(per_speaker):
            uid = f"s{s}_u{u}"
            noise = rng.normal(0, 0.1, 8000 + 1600 * u)
            audio = numpy.convolve(noise, colour, mode="same") / 4
            soundfile.write(folder / f"{uid}.wav", audio, 16000)
            rows.append(
                {
                    "ID": uid,
                    "duration": len(audio) / 16000,
                    "wav": f"$data_root/{uid}.wav",
                    "spk_id": f"spk{s}",
                    "emo": EMOTIONS[u % len(EMOTIONS)],
                }
            )
    path = folder / "manifest.csv"
    write_manifest(rows, path)
    return str(path)


@pytest.fixture
def manifest(tmp_path):
    """6 speakers, 4 utterances each in 4 emotions."""
    return _corpus(tmp_path / "corpus")


def _embed(folder, manifest, embed_fn=None):
    """The manifest's embeddings: with ``embed_fn``, else with the model
    folder loaded offline by the verify command's loader."""
    if embed_fn is None:
        verifier = SpeakerVerifier(folder)

        def embed_fn(wavs, lens):
            return embed(verifier.modules, wavs, lens)

    rows = read_manifest(manifest)
    return extract_embeddings(
        rows,
        embed_fn,
        batch_size=4,
        device="cpu",
        data_root=os.path.dirname(manifest),
        progress=False,
    )


def _fails(argv, capsys, call=main):
    """The standard error of a command that fails: one error line, after
    the progress bar of embedding if it got that far."""
    capsys.readouterr()
    assert call(argv) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith("error: "), err
    assert err.count("error") == 1, err
    return err


@pytest.mark.parametrize(
    "kind, options",
    [
        ("within_speaker_nap", ["--dims", "3"]),
        ("lda", ["--dims", "4"]),  # 16-d embeddings to 4-d
    ],
)
def test_fitted_folder_embeds_in_the_backend_space(
    model, manifest, tmp_path, monkeypatch, capsys, no_network, kind, options
):
    """fit --model writes a folder that SpeakerRecognition.from_hparams
    loads offline; its embeddings are the back-end's transform of the
    original model's, and verify_batch scores as Backend.score_pairs."""
    from speechbrain.inference.speaker import SpeakerRecognition

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "with_backend"
    argv = ["fit", "--model", str(model), "--manifest", manifest]
    argv += ["--batch-size", "4"]  # _embed's: the same padding
    assert main([*argv, "--kind", kind, *options, "--out", str(out)]) == 0
    assert capsys.readouterr().out.startswith(f"{kind} (dims ")
    assert set(os.listdir(out)) == {
        "hyperparams.yaml",
        "embedding_model.ckpt",
        "mean_var_norm_emb.ckpt",
        "label_encoder.txt",
        "label_encoder.ckpt",
        "backend.npz",
        "README.md",
    }
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    ids, plain = _embed(model, manifest)
    rows = read_manifest(manifest)
    speakers = [row["spk_id"] for row in rows]
    backend = fit(kind, plain, speakers, dims=int(options[1]))
    saved = load_backend(out / "backend.npz")
    for key, value in backend.arrays.items():
        numpy.testing.assert_allclose(saved.arrays[key], value, atol=1e-6)
    sb = SpeakerRecognition.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    _, mapped = _embed(out, manifest, sb.encode_batch)
    torch.testing.assert_close(
        mapped, backend.transform(plain), atol=1e-5, rtol=0
    )
    first, second = torch.triu_indices(len(ids), len(ids), offset=1)
    scores = sb.similarity(mapped[first], mapped[second])  # verify_batch's
    expected = backend.score_pairs(plain[first], plain[second])
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)
    # The embedding statistics change nothing in the back-end's space.
    wavs = torch.randn(2, 16000, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(
        sb.encode_batch(wavs, normalize=True), sb.encode_batch(wavs)
    )


def test_verify_and_encoder_classifier_on_a_fitted_folder(
    model, manifest, tmp_path, monkeypatch, capsys, no_network
):
    """The verify command scores in the back-end's space (a threshold must
    be given: none is stored); EncoderClassifier loads the folder and
    refuses to classify."""
    from speechbrain.inference.classifiers import EncoderClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "with_backend"
    argv = ["fit", "--model", str(model), "--manifest", manifest]
    assert main([*argv, "--kind", "wccn", "--out", str(out)]) == 0
    capsys.readouterr()
    rows = read_manifest(manifest)
    wavs = [
        row["wav"].replace("$data_root", os.path.dirname(manifest))
        for row in rows[:2]
    ]
    err = _fails([*wavs, "--model", str(out)], capsys, verify_main)
    assert "stores no threshold" in err
    assert verify_main([*wavs, "--model", str(out), "--threshold", "0.5"]) == 0
    score = float(capsys.readouterr().out.splitlines()[1].split("\t")[2])
    verifier = SpeakerVerifier(model)
    plain = torch.stack([verifier.embed(wav)[0] for wav in wavs])
    expected = load_backend(out / "backend.npz").score_pairs(
        plain[:1], plain[1:]
    )
    assert score == pytest.approx(float(expected), abs=1e-5)
    classifier = EncoderClassifier.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    assert classifier.encode_batch(torch.zeros(1, 16000)).shape == (1, 1, 16)
    with pytest.raises(RuntimeError, match="wccn back-end.*has none"):
        classifier.classify_file(wavs[0])


@pytest.mark.parametrize(
    "kind, options, settings, emotions",
    [
        ("plda", ["--set", "rank=3"], {"rank": 3}, False),
        ("emotion_nap", ["--dims", "2"], {"dims": 2}, True),
        (
            "consistency",
            ["--pairs", "emotion", "--set", "steps=20", "--dims", "2"],
            {"steps": 20, "dims": 2},
            True,
        ),
    ],
)
def test_embeddings_file_gives_the_backend(
    manifest, tmp_path, kind, options, settings, emotions
):
    """fit --embeddings writes the back-end of the manifest's rows (in the
    manifest's order, whatever the file's), on its emotion labels where
    asked; PLDA is fitted this way."""
    rows = read_manifest(manifest)
    ids = [row["ID"] for row in rows]
    gen = torch.Generator().manual_seed(0)
    emb = torch.randn(len(ids), 8, generator=gen)
    order = torch.randperm(len(ids), generator=gen)
    path = tmp_path / "emb.npz"
    save_embeddings(
        str(path),
        [ids[i] for i in order] + ["extra"],
        torch.cat([emb[order], torch.ones(1, 8)]),
    )
    out = tmp_path / "backend.npz"
    argv = ["fit", "--embeddings", str(path), "--manifest", manifest]
    assert main([*argv, "--kind", kind, *options, "--out", str(out)]) == 0
    labels = [row["emo"] for row in rows] if emotions else None
    expected = fit(
        kind, emb, [row["spk_id"] for row in rows], labels, **settings
    )
    got = load_backend(out)
    pairs = emb[:12], emb[12:]
    torch.testing.assert_close(
        got.score_pairs(*pairs), expected.score_pairs(*pairs)
    )


def test_refusals_name_what_is_wrong(model, manifest, tmp_path, capsys):
    """Each refusal is one error line, and nothing is written."""
    argv = ["fit", "--model", str(model), "--manifest", manifest]
    out = tmp_path / "out"

    err = _fails([*argv, "--kind", "plda", "--out", str(out)], capsys)
    assert "plda: scores trials itself" in err and "scoring-time" in err
    assert "embeddings:" not in err  # refused before embedding

    one = _corpus(tmp_path / "one", speakers=1)
    err = _fails(
        [
            "fit",
            "--model",
            str(model),
            "--manifest",
            one,
            "--kind",
            "lda",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert "lda: 1 speaker(s) in the fitting data; it needs at least 2" in err

    err = _fails(
        [*argv, "--kind", "wccn", "--dims", "3", "--out", str(out)], capsys
    )
    assert "--dims: wccn has no such setting" in err

    err = _fails(
        [*argv, "--kind", "lda", "--set", "dims=x", "--out", str(out)], capsys
    )
    assert "--set dims=x: dims takes an integer" in err

    err = _fails(
        [
            "fit",
            "--model",
            str(tmp_path),
            "--manifest",
            manifest,
            "--kind",
            "lda",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert f"{tmp_path}: no hyperparams.yaml" in err

    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    err = _fails(
        [*argv, "--kind", "lda", "--out", str(tmp_path / "full")], capsys
    )
    assert "not empty" in err

    rows = read_manifest(manifest)
    rows[3]["emo"] = ""
    write_manifest(rows, tmp_path / "corpus" / "unlabelled.csv")
    err = _fails(
        [
            "fit",
            "--model",
            str(model),
            "--manifest",
            str(tmp_path / "corpus" / "unlabelled.csv"),
            "--kind",
            "emotion_nap",
            "--out",
            str(out),
        ],
        capsys,
    )
    assert "1 of 24 rows have none in the emo column (s0_u3)" in err
    assert "embeddings:" not in err

    path = tmp_path / "emb.npz"
    save_embeddings(
        str(path), [r["ID"] for r in rows[2:]], torch.randn(len(rows) - 2, 8)
    )
    err = _fails(
        [
            "fit",
            "--embeddings",
            str(path),
            "--manifest",
            manifest,
            "--kind",
            "lda",
            "--out",
            str(tmp_path / "b.npz"),
        ],
        capsys,
    )
    assert f"no embedding for 2 of the {len(rows)} utterances" in err
    assert "s0_u0, s0_u1" in err
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == [
        "corpus",
        "emb.npz",
        "full",
        "model",
        "one",
    ]


def test_a_folder_with_a_backend_is_not_fitted_again(
    model, manifest, tmp_path, capsys
):
    argv = ["fit", "--manifest", manifest, "--kind", "within_speaker_nap"]
    out = tmp_path / "with_backend"
    out.mkdir()  # an empty folder is taken
    assert main([*argv, "--model", str(model), "--out", str(out)]) == 0
    err = _fails(
        [*argv, "--model", str(out), "--out", str(tmp_path / "x")], capsys
    )
    assert "applies a back-end already" in err


def test_export_refuses_a_backend_it_cannot_apply(tmp_path, capsys):
    """export --backend: PLDA, a back-end fitted on embeddings of another
    size, and an emotion model, are refused before anything is written."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "hyperparams.yaml").write_text(
        "mean_var_norm: !new:speechbrain.processing.features."
        "InputNormalization\n    norm_type: sentence\n"
        "embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN."
        "ECAPA_TDNN\n    input_size: 24\n    lin_neurons: 16\n"
    )
    emb = torch.randn(30, 8, generator=torch.Generator().manual_seed(0))
    speakers = [i % 5 for i in range(30)]
    fit("plda", emb, speakers, rank=2).save(tmp_path / "plda.npz")
    fit("lda", emb, speakers, dims=2).save(tmp_path / "lda.npz")
    out = tmp_path / "model"
    for name, message in [
        ("plda.npz", "plda: scores trials itself"),
        ("lda.npz", "fitted on 8-d embeddings, this model's are 16-d"),
        ("none.npz", "none.npz: no such file"),
    ]:
        err = _fails(
            [str(run), str(out), "--backend", str(tmp_path / name)],
            capsys,
            export_main,
        )
        assert f"{tmp_path / name}: " in err and message in err
    with open(run / "hyperparams.yaml", "a") as f:
        f.write("emotion_classifier: !new:torch.nn.Linear [16, 4]\n")
    err = _fails(
        [str(run), str(out), "--backend", str(tmp_path / "lda.npz")],
        capsys,
        export_main,
    )
    assert f"{run}: an emotion model; a back-end applies to speaker" in err
    assert not out.exists()
    assert sorted(os.listdir(run)) == ["hyperparams.yaml"]
