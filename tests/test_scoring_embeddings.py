"""Embedding store and batched, deterministic extraction."""

import numpy as np
import pytest
import soundfile
import torch

from emotion_invariant.scoring import (
    ScoringError,
    extract_embeddings,
    load_embeddings,
    save_embeddings,
)


@pytest.mark.parametrize("ext", [".npz", ".pt"])
def test_round_trip(tmp_path, ext):
    ids = ["spk1/utt1", "spk1/utt2", "spk2/utt1"]
    emb = torch.randn(3, 5, dtype=torch.float64)
    path = str(tmp_path / f"emb{ext}")
    save_embeddings(path, ids, emb)
    got_ids, got = load_embeddings(path)
    assert got_ids == ids
    assert got.dtype == torch.float32 and torch.equal(got, emb.float())


@pytest.mark.parametrize(
    "ids, emb, message",
    [
        (["a", "b", "a"], torch.ones(3, 2), "duplicate id.*'a'"),
        (["a", "b"], torch.tensor([[1.0, float("nan")], [1, 1]]), "NaN.*'a'"),
        (["a", "b"], torch.tensor([[1.0, 1.0], [0, 0]]), "all-zero.*'b'"),
        (["a", "b"], torch.ones(3, 2), "2 ids for embeddings of shape"),
        (["a"], torch.ones(2), r"must be \[N, D\]"),
        (["a b"], torch.ones(1, 2), "whitespace"),
        ([], torch.ones(0, 2), "0 ids"),
    ],
)
def test_bad_embeddings_are_refused_and_nothing_written(
    tmp_path, ids, emb, message
):
    path = tmp_path / "emb.npz"
    with pytest.raises(ScoringError, match=message):
        save_embeddings(str(path), ids, emb)
    assert list(tmp_path.iterdir()) == []


def test_bad_files(tmp_path):
    with pytest.raises(ScoringError, match="unknown embedding file type"):
        save_embeddings(str(tmp_path / "e.txt"), ["a"], torch.ones(1, 2))
    with pytest.raises(ScoringError, match="not found"):
        load_embeddings(str(tmp_path / "none.npz"))
    np.savez(tmp_path / "keys.npz", names=np.array(["a"]), emb=np.ones((1, 2)))
    with pytest.raises(ScoringError, match="expected 'ids' and 'embeddings'"):
        load_embeddings(str(tmp_path / "keys.npz"))
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ScoringError, match="unreadable"):
        load_embeddings(str(tmp_path / "junk.pt"))
    # a file written by other means is checked on reading too
    torch.save(
        {"ids": ["a", "a"], "embeddings": torch.ones(2, 2)}, tmp_path / "dup.pt"
    )
    with pytest.raises(ScoringError, match="dup.pt: duplicate"):
        load_embeddings(str(tmp_path / "dup.pt"))


@pytest.fixture
def corpus(tmp_path):
    """Five files: different lengths, one stereo at 8 kHz, one segment."""
    rng = np.random.default_rng(0)
    rows = []
    specs = [
        (16000, 4000, 1),
        (16000, 12000, 1),
        (8000, 3000, 2),
        (16000, 9000, 1),
    ]
    for i, (rate, n, channels) in enumerate(specs):
        audio = rng.uniform(-0.5, 0.5, (n, channels)).astype(np.float32)
        soundfile.write(str(tmp_path / f"{i}.wav"), audio, rate)
        rows.append(
            {"ID": f"u{i}", "wav": f"$data_root/{i}.wav", "duration": n / rate}
        )
    rows.append(
        {
            "ID": "seg",
            "wav": "$data_root/1.wav",
            "duration": 0.25,
            "start": "1000",
            "stop": "5000",
        }
    )
    return tmp_path, rows


def stats_embedding(wavs, rel_lens):
    """Sum, valid length and padded tail of each row: checks the padding."""
    lengths = torch.round(rel_lens * wavs.shape[1]).long()
    valid = torch.arange(wavs.shape[1])[None, :] < lengths[:, None]
    return torch.stack(
        [
            (wavs * valid).sum(1),
            lengths.float(),
            (wavs * ~valid).abs().sum(1),
        ],
        dim=1,
    ).unsqueeze(1)  # [B, 1, D] like SpeechBrain's encode_batch


def test_extraction_batches_pads_resamples_and_keeps_order(corpus):
    folder, rows = corpus
    ids, emb = extract_embeddings(
        rows,
        stats_embedding,
        batch_size=2,
        device="cpu",
        data_root=str(folder),
        progress=False,
    )
    assert ids == ["u0", "u1", "u2", "u3", "seg"]
    assert emb.shape == (5, 3) and emb.dtype == torch.float32
    assert emb[:, 1].tolist() == [4000, 12000, 6000, 9000, 4000]
    assert emb[:, 2].abs().max() == 0  # padding is zeros
    mono = soundfile.read(str(folder / "0.wav"), dtype="float32")[0]
    assert emb[0, 0] == pytest.approx(float(mono.sum()), abs=1e-3)
    segment = soundfile.read(str(folder / "1.wav"), dtype="float32")[0]
    assert emb[4, 0] == pytest.approx(float(segment[1000:5000].sum()), abs=1e-3)
    stereo = soundfile.read(str(folder / "2.wav"), dtype="float32")[0]
    assert emb[2, 0] == pytest.approx(2 * float(stereo.mean(1).sum()), rel=0.05)


def test_extraction_is_batch_size_invariant(corpus):
    folder, rows = corpus
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(400, 8)).eval()

    def embed(wavs, rel_lens):
        frames = wavs[:, : wavs.shape[1] // 400 * 400].reshape(
            len(wavs), -1, 400
        )
        lengths = (rel_lens * wavs.shape[1] / 400).floor().clamp(min=1)
        mask = torch.arange(frames.shape[1])[None, :] < lengths[:, None]
        return (model(frames) * mask[..., None]).sum(1) / lengths[:, None]

    runs = [
        extract_embeddings(
            rows,
            embed,
            batch_size=b,
            device="cpu",
            data_root=str(folder),
            progress=False,
        )[1]
        for b in (1, 3, 5)
    ]
    assert torch.allclose(runs[0], runs[1], atol=1e-5)
    assert torch.allclose(runs[0], runs[2], atol=1e-5)


def test_extraction_errors(corpus):
    folder, rows = corpus
    model = torch.nn.Linear(3, 3)
    with pytest.raises(ScoringError, match="training mode"):
        extract_embeddings(rows, model, data_root=str(folder), progress=False)
    broken = [
        *rows[:1],
        {"ID": "gone", "wav": "$data_root/gone.wav", "duration": 9},
    ]
    with pytest.raises(ScoringError, match="'gone': cannot read"):
        extract_embeddings(
            broken, stats_embedding, data_root=str(folder), progress=False
        )
    with pytest.raises(ScoringError, match="needs data_root"):
        extract_embeddings(rows, stats_embedding, progress=False)
    with pytest.raises(ScoringError, match="duplicate utterance ID 'u0'"):
        extract_embeddings(
            rows + rows[:1],
            stats_embedding,
            data_root=str(folder),
            progress=False,
        )
    with pytest.raises(ScoringError, match="returned shape"):
        extract_embeddings(
            rows,
            lambda w, n: torch.ones(1, 4),
            batch_size=2,
            data_root=str(folder),
            progress=False,
        )
