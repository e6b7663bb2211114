"""Bad input to the score command line: each error names the file at
fault, and a suspicious trial list is scored with a warning."""

import logging

import numpy as np
import pytest
import torch

from emotion_invariant.scoring import save_embeddings
from emotion_invariant.scoring.score import main


@pytest.fixture
def embeddings(tmp_path):
    path = tmp_path / "emb.npz"
    save_embeddings(str(path), ["a", "b", "c"], torch.eye(3) + 0.1)
    return path


def _score(embeddings, trials_text, tmp_path, *extra):
    trials = tmp_path / "trials.txt"
    trials.write_text(trials_text)
    out = tmp_path / "scores.txt"
    argv = ["--embeddings", str(embeddings), "--trials", str(trials)]
    return main([*argv, "--out", str(out), *extra]), trials, out


def test_missing_id_names_the_embedding_file(embeddings, tmp_path, capsys):
    status, trials, out = _score(embeddings, "1 a b\n0 a x\n", tmp_path)
    assert status == 1
    err = capsys.readouterr().err
    assert f"not in {embeddings}, e.g. 'x'" in err
    assert "<embeddings>" not in err and not out.exists()


def test_self_trial_is_scored_with_a_warning(embeddings, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="emotion_invariant.scoring"):
        status, trials, out = _score(
            embeddings, "1 a a\n1 a b\n0 a c\n1 c c\n", tmp_path
        )
    assert status == 0 and len(out.read_text().splitlines()) == 4
    assert f"{trials}: 2 trial(s) compare an utterance with itself" in (
        caplog.text
    )
    assert "first on trial 1: 'a'" in caplog.text


def test_all_target_trials_name_the_trial_list(embeddings, tmp_path, capsys):
    status, trials, out = _score(
        embeddings, "1 a b\n1 a c\n", tmp_path, "--report", "r.json"
    )
    assert status == 1
    err = capsys.readouterr().err
    assert f"error: {trials}: all 2 trials are target trials" in err
    assert not out.exists()


def test_random_bytes_embedding_file_gives_no_advice(tmp_path, capsys):
    path = tmp_path / "emb.pt"
    path.write_bytes(np.random.default_rng(0).bytes(2000))
    status, _, out = _score(path, "1 a b\n0 a c\n", tmp_path)
    assert status == 1
    err = capsys.readouterr().err
    assert f"error: {path}: unreadable embedding file: not tensors" in err
    assert "weights_only" not in err and not out.exists()


@pytest.mark.parametrize("target", ["--embeddings", "--trials", "--report"])
def test_output_over_an_input_is_refused(embeddings, tmp_path, capsys, target):
    """``--out`` (or the report) naming an input, by another spelling of
    its path, is refused before anything runs; the input is unchanged."""
    trials = tmp_path / "trials.txt"
    trials.write_text("1 a b\n0 a c\n")
    link = tmp_path / "link"
    link.symlink_to(tmp_path)
    argv = ["--embeddings", str(embeddings), "--trials", str(trials)]
    if target == "--report":
        argv += ["--out", str(tmp_path / "s.txt")]
        argv += ["--report", str(link / "emb.npz")]
        victim, flag = embeddings, "--embeddings"
    else:
        victim = embeddings if target == "--embeddings" else trials
        flag = target
        argv += ["--out", str(link / victim.name)]
    before = victim.read_bytes()
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert f"is {victim}, given as {flag}" in err
    assert victim.read_bytes() == before
    assert not (tmp_path / "s.txt").exists()


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu0", "--device gpu0: not a torch device; use cpu, cuda or cuda:N"),
        ("cuda", "--device cuda: no GPU is visible"),
        ("cuda:1", "--device cuda:1: no GPU is visible"),
    ],
)
def test_bad_device_is_one_line(
    embeddings, tmp_path, capsys, monkeypatch, device, message
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    status, _, out = _score(
        embeddings, "1 a b\n0 a c\n", tmp_path, "--device", device
    )
    assert status == 1
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not out.exists()


def test_gpu_index_beyond_the_visible_ones(
    embeddings, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    status, _, out = _score(
        embeddings, "1 a b\n0 a c\n", tmp_path, "--device", "cuda:1"
    )
    assert status == 1
    assert capsys.readouterr().err == (
        "error: --device cuda:1: 1 GPU(s) visible, cuda:0 to cuda:0\n"
    )
