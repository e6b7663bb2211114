"""The verify command on an exported and on a published-layout folder."""

import logging

import numpy
import pytest
import soundfile
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

from emotion_invariant.verification.verify import main

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
    assert line.endswith("\tsame")


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
    assert all(line.endswith("\tdifferent") for line in lines)
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


# As export writes an emotion model: an MLP head on the embeddings, emotion
# labels, global fbank statistics (no ``task`` key in older exports).
EMOTION = (
    MODULES.replace(
        """classifier: !new:speechbrain.lobes.models.ECAPA_TDNN.Classifier
    input_size: 16
    out_neurons: 2
""",
        """classifier: !new:torch.nn.Sequential
    - !new:torch.nn.Linear {in_features: 16, out_features: 2}
""",
    )
    + """pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        embedding_model: !ref <embedding_model>
        label_encoder: !ref <label_encoder>
"""
)


def _run(argv, capsys):
    """Exit status and stderr of the command; no traceback either way."""
    status = main(argv)
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


def test_too_short_wav_names_file_and_minimum(
    tmp_path, wavs, capsys, no_network
):
    """5 ms of audio: the file and the model's minimum duration, not
    torch's padding error."""
    folder = _folder(tmp_path / "exported", EXPORTED)
    short = tmp_path / "short.wav"
    soundfile.write(short, numpy.full(80, 0.1), 16000)
    status, err = _run([wavs[0], str(short), "--model", str(folder)], capsys)
    assert status == 1
    assert err.startswith(f"error: {short}: 5 ms of audio, shorter than the ")
    # the tiny ECAPA's reflect padding needs 5 frames of 10 ms: 40 ms
    assert "model's minimum of 0.04 s" in err


def test_pairs_with_spaces_and_hashes_in_names(
    tmp_path, wavs, capsys, no_network
):
    """Tab-separated pairs keep spaces and '#' in file names, and each
    output line is tab-separated too, so it reads back as pairs."""
    folder = _folder(tmp_path / "published", PUBLISHED)
    spaced, hashed = tmp_path / "a b.wav", tmp_path / "c#1.wav"
    soundfile.write(spaced, numpy.full(16000, 0.1), 16000)
    soundfile.write(hashed, numpy.full(12000, -0.1), 16000)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(
        "# enrol\ttest\na b.wav\t1.wav\n1\tc#1.wav\t0.wav\n0.wav c#1.wav\n"
    )
    argv = ["--pairs", str(pairs), "--model", str(folder), "--threshold", "0"]
    assert main(argv) == 0
    lines = _lines(capsys)[1:]
    assert [line.split("\t")[:2] for line in lines] == [
        [str(spaced), wavs[1]],
        [str(hashed), wavs[0]],
        [wavs[0], str(hashed)],
    ]


def test_ambiguous_pair_line_is_refused(tmp_path, wavs, capsys, no_network):
    """Three space-separated fields whose first is no 0/1 label: a name
    with a space, refused naming the line, never read as 'LABEL ENROL
    TEST' (which scored the wrong file)."""
    folder = _folder(tmp_path / "published", PUBLISHED)
    soundfile.write(tmp_path / "a b.wav", numpy.full(16000, 0.1), 16000)
    pairs = tmp_path / "pairs.txt"
    pairs.write_text("0.wav 1.wav\na b.wav 1.wav\n")
    argv = ["--pairs", str(pairs), "--model", str(folder), "--threshold", "0"]
    status, err = _run(argv, capsys)
    assert status == 1
    assert err.startswith(f"error: {pairs}:2: 3 fields, and 'a' is not")
    assert "tab" in err


@pytest.mark.parametrize("task", [None, "emotion"])
def test_emotion_model_is_refused(tmp_path, wavs, capsys, no_network, task):
    """An exported emotion model is no speaker model, threshold or not."""
    text = EMOTION if task is None else f"task: {task}\n" + EMOTION
    folder = _folder(tmp_path / "emotion", text)
    argv = [wavs[0], wavs[1], "--model", str(folder), "--threshold", "0.5"]
    status, err = _run(argv, capsys)
    assert status == 1
    assert err.startswith(f"error: {folder} is an emotion model")
    assert "speaker model" in err


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_threshold_must_be_finite(tmp_path, wavs, capsys, no_network, value):
    folder = _folder(tmp_path / "published", PUBLISHED)
    argv = [wavs[0], wavs[1], "--model", str(folder), f"--threshold={value}"]
    status, err = _run(argv, capsys)
    assert status == 1
    assert f"error: --threshold {value}: not a finite number" in err
    assert capsys.readouterr().out == ""


def test_missing_wav_is_named_before_the_model_loads(
    tmp_path, wavs, capsys, no_network
):
    missing = tmp_path / "nope.wav"
    argv = [wavs[0], str(missing), "--model", str(tmp_path / "no_model")]
    status, err = _run(argv, capsys)
    assert status == 1
    assert err == f"error: {missing}: no such file\n"


def test_silent_wav_is_scored_with_a_warning(
    tmp_path, wavs, capsys, caplog, no_network
):
    folder = _folder(tmp_path / "published", PUBLISHED)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, numpy.zeros(16000), 16000)
    argv = [wavs[0], str(silent), "--model", str(folder), "--threshold", "0"]
    with caplog.at_level(logging.WARNING):
        assert main(argv) == 0
    assert f"{silent}" in caplog.text and "silent" in caplog.text
    assert "-80 dBFS" in caplog.text
    assert str(wavs[0]) not in caplog.text


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu0", "--device gpu0: not a torch device; use cpu, cuda or cuda:N"),
        ("cuda", "--device cuda: no GPU is visible"),
    ],
)
def test_bad_device_is_one_line(
    tmp_path, wavs, capsys, monkeypatch, no_network, device, message
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    folder = _folder(tmp_path / "published", PUBLISHED)
    argv = [wavs[0], wavs[1], "--model", str(folder), "--threshold", "0"]
    status, err = _run([*argv, "--device", device], capsys)
    assert status == 1
    assert err == f"error: {message}\n"
