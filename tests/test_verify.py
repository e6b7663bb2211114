"""The verify command on an exported and on a published-layout folder."""

import numpy
import pytest
import soundfile
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

from emotion_invariant.scoring.verify import main

MODULES = """
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: 24
mean_var_norm: !new:speechbrain.processing.features.InputNormalization
    norm_type: sentence
    std_norm: False
embedding_model: !new:speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN
    input_size: 24
    channels: [16, 16, 16, 16, 48]
    attention_channels: 8
    lin_neurons: 16
classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 16
    out_neurons: 2
mean_var_norm_emb: !new:speechbrain.processing.features.InputNormalization
    norm_type: global
    std_norm: False
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
modules:
    compute_features: !ref <compute_features>
    mean_var_norm: !ref <mean_var_norm>
    embedding_model: !ref <embedding_model>
    mean_var_norm_emb: !ref <mean_var_norm_emb>
    classifier: !ref <classifier>
"""
# As export writes it: a stored threshold, every file from the folder.
EXPORTED = (
    "threshold: 0.5\n"
    + MODULES
    + """pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        classifier: !ref <classifier>
        mean_var_norm_emb: !ref <mean_var_norm_emb>
        label_encoder: !ref <label_encoder>
"""
)
# As SpeechBrain publishes it: paths on the hub, no threshold.
PUBLISHED = (
    "pretrained_path: speechbrain/spkrec-ecapa-voxceleb\n"
    + MODULES
    + """pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        label_encoder: !ref <label_encoder>
    paths:
        embedding_model: !ref <pretrained_path>/embedding_model.ckpt
        label_encoder: !ref <pretrained_path>/label_encoder.txt
"""
)


def _folder(path, hparams):
    torch.manual_seed(0)
    path.mkdir()
    model = ECAPA_TDNN(
        24, channels=[16, 16, 16, 16, 48], attention_channels=8, lin_neurons=16
    )
    torch.save(model.state_dict(), path / "embedding_model.ckpt")
    torch.save(
        Classifier(16, out_neurons=2).state_dict(), path / "classifier.ckpt"
    )
    torch.save(
        {"count": 0, "glob_mean": torch.zeros(16), "glob_std": torch.ones(16)},
        path / "mean_var_norm_emb.ckpt",
    )
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(["a", "b"])
    encoder.save(path / "label_encoder.ckpt")
    (path / "hyperparams.yaml").write_text(hparams)
    return path


@pytest.fixture
def wavs(tmp_path):
    rng = numpy.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"{i}.wav"
        soundfile.write(path, rng.normal(0, 0.1, 16000 + 4000 * i), 16000)
        paths.append(str(path))
    return paths


def _lines(capsys):
    return capsys.readouterr().out.strip().splitlines()


def test_exported_folder_scores_as_speechbrain(
    tmp_path, wavs, capsys, monkeypatch, no_network
):
    """The score is SpeakerRecognition.verify_files' own; the decision uses
    the stored threshold."""
    from speechbrain.inference.speaker import SpeakerRecognition

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    folder = _folder(tmp_path / "exported", EXPORTED)
    assert main([wavs[0], wavs[1], "--model", str(folder)]) == 0
    header, line = _lines(capsys)
    assert header == "# threshold 0.500000 (stored, dev EER)"
    enrol, test, score, decision = line.split()
    model = SpeakerRecognition.from_hparams(
        source=str(folder), savedir=str(tmp_path / "savedir")
    )
    expected = float(model.verify_files(wavs[0], wavs[1])[0])
    assert (enrol, test) == (wavs[0], wavs[1])
    assert float(score) == pytest.approx(expected, abs=1e-5)
    assert decision == ("same" if expected >= 0.5 else "different")


def test_published_folder_needs_a_threshold(tmp_path, wavs, capsys, no_network):
    """SpeechBrain's published layout (hub paths, label_encoder.ckpt) loads
    offline; with no stored threshold, --threshold is required."""
    folder = _folder(tmp_path / "published", PUBLISHED)
    assert main([wavs[0], wavs[1], "--model", str(folder)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "pass --threshold" in err
    assert (
        main([wavs[0], wavs[1], "--model", str(folder), "--threshold", "-1"])
        == 0
    )
    header, line = _lines(capsys)
    assert header == "# threshold -1.000000 (given)"
    assert line.endswith(" same")


def test_pairs_file(tmp_path, wavs, capsys, no_network):
    """Pairs from a file, relative to it; a bad line is named."""
    folder = _folder(tmp_path / "published", PUBLISHED)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("# enrol test\n0.wav 1.wav\n1 0.wav 2.wav\n\n")
    assert (
        main(
            ["--pairs", str(pairs), "--model", str(folder), "--threshold", "2"]
        )
        == 0
    )
    lines = _lines(capsys)[1:]
    assert [line.split()[:2] for line in lines] == [
        [wavs[0], wavs[1]],
        [wavs[0], wavs[2]],
    ]
    assert all(line.endswith(" different") for line in lines)
    single = main(
        [wavs[0], wavs[1], "--model", str(folder), "--threshold", "2"]
    )
    assert single == 0 and _lines(capsys)[1] == lines[0]
    pairs.write_text("0.wav 1.wav\n0.wav\n")
    assert main(["--pairs", str(pairs), "--model", str(folder)]) == 1
    assert f"error: {pairs}:2: expected" in capsys.readouterr().err
    pairs.write_text("0.wav missing.wav\n")
    argv = ["--pairs", str(pairs), "--model", str(folder), "--threshold", "0"]
    assert main(argv) == 1
    assert "missing.wav" in capsys.readouterr().err
