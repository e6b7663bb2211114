"""Tests for per-speaker clustering, its report, plots and the CLI."""

import csv
import json
import math
from collections import Counter
from itertools import combinations

import numpy as np
import pytest
import soundfile
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from speechbrain.processing.features import InputNormalization

from emotion_invariant.clustering import (
    ClusteringError,
    cluster_report,
    cluster_speakers,
    plot_speaker,
    project_2d,
    purity,
    report_markdown,
)
from emotion_invariant.clustering.analysis import main
from emotion_invariant.data.manifest import write_manifest
from emotion_invariant.scoring import load_embeddings, save_embeddings

TRUE_K = {"s1": 2, "s2": 3, "s3": 4}


def blobs(true_k=TRUE_K, per_cluster=8, dim=16, noise=0.03, seed=0):
    """Well-separated blobs on distinct directions, per speaker."""
    rng = np.random.default_rng(seed)
    rows, speakers, truth = [], [], []
    for spk, k in true_k.items():
        centres = rng.normal(size=(k, dim))
        for c in range(k):
            for _ in range(per_cluster):
                rows.append(centres[c] + noise * rng.normal(size=dim))
                speakers.append(spk)
                truth.append(c)
    order = rng.permutation(len(rows))
    return (
        np.array(rows)[order],
        [speakers[i] for i in order],
        [truth[i] for i in order],
    )


def test_silhouette_finds_true_k_and_partition():
    emb, speakers, truth = blobs()
    found = cluster_speakers(emb, speakers, k_range=(2, 6), seed=0)
    assert found.k == TRUE_K
    for spk, k in TRUE_K.items():
        rows = [i for i, s in enumerate(speakers) if s == spk]
        assert set(found.silhouette[spk]) == set(range(2, 7))
        best = max(found.silhouette[spk], key=found.silhouette[spk].get)
        assert best == k
        assert all(found.ids[i].startswith(f"{spk}:") for i in rows)
        assert adjusted_rand_score(
            [truth[i] for i in rows], [found.ids[i] for i in rows]
        ) == pytest.approx(1.0)


def test_ids_unique_across_speakers_and_canonical():
    emb, speakers, _ = blobs({"a": 2, "b": 2})
    found = cluster_speakers(emb, speakers, k=2)
    assert len(set(found.ids)) == 4
    for spk in ("a", "b"):
        own = [c for c, s in zip(found.ids, speakers) if s == spk]
        # numbered by first appearance, whatever k-means' own labels were
        assert list(dict.fromkeys(own)) == [f"{spk}:0", f"{spk}:1"]


def test_deterministic_from_seed():
    rng = np.random.default_rng(5)
    emb = rng.normal(size=(60, 8))
    speakers = ["a"] * 30 + ["b"] * 30
    first = cluster_speakers(emb, speakers, k_range=(2, 5), seed=3)
    again = cluster_speakers(
        torch.as_tensor(emb), speakers, k_range=(2, 5), seed=3
    )
    assert first == again


def test_fixed_k_scaling_and_small_speakers():
    emb, speakers, _ = blobs({"a": 3, "b": 2})
    fixed = cluster_speakers(emb, speakers, k=3)
    assert fixed.k == {"a": 3, "b": 3} and fixed.silhouette == {
        "a": {},
        "b": {},
    }
    assert len({c for c, s in zip(fixed.ids, speakers) if s == "b"}) == 3
    # cosine geometry: scaling an utterance does not move it
    scaled = emb * np.linspace(0.5, 4.0, len(emb))[:, None]
    assert cluster_speakers(scaled, speakers, k=3) == fixed
    two = cluster_speakers(np.eye(3)[:2], ["x", "x"], k_range=(2, 4))
    assert two.k == {"x": 1} and two.ids == ["x:0", "x:0"]
    dup = cluster_speakers(np.ones((5, 3)), ["y"] * 5, k=3)
    assert dup.k == {"y": 1}
    three = cluster_speakers(np.eye(3), ["z"] * 3, k_range=(2, 6))
    assert three.k == {"z": 2} and set(three.silhouette["z"]) == {2}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"embeddings": np.ones((3, 2)), "k": 0}, "positive integer"),
        ({"embeddings": np.ones((3, 2)), "k_range": (1, 3)}, "2 <= low"),
        ({"embeddings": np.ones((3, 2)), "k_range": (4, 3)}, "low <= high"),
        ({"embeddings": np.ones((2, 2))}, "2 rows for 3 labels"),
        ({"embeddings": np.ones(3)}, r"\[N, D\]"),
        ({"embeddings": [[1, 0], [np.nan, 1], [1, 1]]}, r"row\(s\) \[1\]"),
        ({"embeddings": [[1, 0], [0, 0], [1, 1]]}, "all-zero"),
    ],
)
def test_bad_input(kwargs, message):
    with pytest.raises(ClusteringError, match=message):
        cluster_speakers(speakers=["a", "a", "b"], **kwargs)


def naive_purity(clusters, labels):
    total = 0
    for c in set(clusters):
        total += Counter(
            lab for cl, lab in zip(clusters, labels) if cl == c
        ).most_common(1)[0][1]
    return total / len(labels)


def entropy(labels):
    n = len(labels)
    return -sum(c / n * math.log(c / n) for c in Counter(labels).values())


def naive_nmi(clusters, labels):
    n = len(labels)
    joint = Counter(zip(clusters, labels))
    pc, pl = Counter(clusters), Counter(labels)
    mi = sum(
        v / n * math.log(v * n / (pc[c] * pl[lab]))
        for (c, lab), v in joint.items()
    )
    h = (entropy(clusters) + entropy(labels)) / 2
    return mi / h if h > 0 else 1.0


def naive_ari(clusters, labels):
    pairs = list(combinations(range(len(labels)), 2))
    same_c = [clusters[i] == clusters[j] for i, j in pairs]
    same_l = [labels[i] == labels[j] for i, j in pairs]
    both = sum(a and b for a, b in zip(same_c, same_l))
    expected = sum(same_c) * sum(same_l) / len(pairs)
    top = (sum(same_c) + sum(same_l)) / 2
    return (both - expected) / (top - expected)


CLUSTERS = ["a:0"] * 3 + ["a:1"] * 3 + ["b:0", "b:0", "b:1", "b:1", "b:1"]
SPEAKERS = ["a"] * 6 + ["b"] * 5
EMOTIONS = ["ang", "ang", "sad", "sad", "sad", "neu"]
EMOTIONS += ["hap", "neu", "hap", "hap", ""]


def test_report_metrics_match_references():
    report = cluster_report(CLUSTERS, SPEAKERS, EMOTIONS, shuffles=5)
    assert report["n_labelled"] == 10 and report["n_speakers"] == 2
    for spk, rows in (("a", range(6)), ("b", range(6, 10))):
        c = [CLUSTERS[i] for i in rows]
        e = [EMOTIONS[i] for i in rows]
        entry = report["speakers"][spk]
        assert entry["purity"] == pytest.approx(naive_purity(c, e))
        assert entry["nmi"] == pytest.approx(naive_nmi(c, e))
        assert entry["nmi"] == pytest.approx(normalized_mutual_info_score(e, c))
        assert entry["ari"] == pytest.approx(naive_ari(c, e))
        assert entry["ari"] == pytest.approx(adjusted_rand_score(e, c))
    assert report["speakers"]["b"]["n"] == 5
    assert report["speakers"]["b"]["n_labelled"] == 4
    assert report["speakers"]["b"]["n_clusters"] == 2
    c, e = CLUSTERS[:10], EMOTIONS[:10]
    overall = report["overall"]
    assert overall["purity"] == pytest.approx(naive_purity(c, e))
    assert overall["nmi"] == pytest.approx(naive_nmi(c, e))
    assert overall["ari"] == pytest.approx(naive_ari(c, e))
    for metric in ("purity", "nmi", "ari"):
        assert report["macro"][metric] == pytest.approx(
            np.mean([report["speakers"][s][metric] for s in "ab"])
        )
    assert purity(["x", "x", "y"], ["1", "2", "2"]) == pytest.approx(2 / 3)


def test_shuffled_baseline_below_aligned_clusters():
    rng = np.random.default_rng(1)
    speakers, emotions, clusters = [], [], []
    for spk in ("a", "b", "c"):
        emo = rng.permutation(["ang", "sad", "hap", "neu"] * 5)
        speakers += [spk] * len(emo)
        emotions += list(emo)
        clusters += [f"{spk}:{e}" for e in emo]
    report = cluster_report(clusters, speakers, emotions, seed=0)
    for entry in [report["overall"], report["macro"]] + list(
        report["speakers"].values()
    ):
        assert entry["purity"] == pytest.approx(1.0)
        for metric in ("purity", "nmi", "ari"):
            assert entry["shuffled"][metric] < entry[metric] - 0.3
    assert report["macro"]["nmi"] == pytest.approx(1.0)
    assert report == cluster_report(clusters, speakers, emotions, seed=0)
    assert report != cluster_report(clusters, speakers, emotions, seed=1)


def test_shuffling_stays_within_speaker():
    # each speaker has one emotion: a within-speaker shuffle changes nothing
    clusters = ["a:0", "a:1", "a:0", "b:0", "b:1", "b:1"]
    speakers = ["a"] * 3 + ["b"] * 3
    emotions = ["ang"] * 3 + ["sad"] * 3
    report = cluster_report(clusters, speakers, emotions, shuffles=10)
    for entry in [report["overall"]] + list(report["speakers"].values()):
        for metric in ("purity", "nmi", "ari"):
            assert entry["shuffled"][metric] == pytest.approx(entry[metric])


def test_report_without_labels_and_bad_input():
    report = cluster_report(["a:0", "a:1"], ["a", "a"], ["", ""])
    assert report["overall"] is None and report["macro"] is None
    assert report["speakers"]["a"]["nmi"] is None
    assert "| a | 2 | 0 | 2 | - | - | - |" in report_markdown(report)
    with pytest.raises(ClusteringError, match="one of each"):
        cluster_report(["a:0"], ["a", "a"], ["ang"])
    with pytest.raises(ClusteringError, match="shuffles"):
        cluster_report(["a:0"], ["a"], ["ang"], shuffles=0)


def test_markdown_rows():
    report = cluster_report(CLUSTERS, SPEAKERS, EMOTIONS, shuffles=3)
    text = report_markdown(report, title="T")
    assert text.startswith("# T\n")
    b = report["speakers"]["b"]
    assert (
        f"| b | 5 | 4 | 2 | {b['purity']:.3f} "
        f"({b['shuffled']['purity']:.3f}) |" in text
    )
    assert f"{report['overall']['nmi']:.3f}" in text


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_plot_speaker(tmp_path, method):
    emb, speakers, truth = blobs({"a": 3}, per_cluster=5)
    path = tmp_path / f"{method}.png"
    emotions = ["ang", "sad", ""] * 5
    plot_speaker(emb, truth, emotions, str(path), "a", method=method)
    assert path.read_bytes()[:4] == b"\x89PNG"
    assert list(tmp_path.iterdir()) == [path]
    points = project_2d(emb, method)
    assert points.shape == (15, 2) and np.isfinite(points).all()


def test_plot_bad_input_writes_nothing(tmp_path):
    with pytest.raises(ClusteringError, match="3 cluster ids for 2"):
        plot_speaker(
            np.eye(3), [0, 1, 2], ["ang", "sad"], tmp_path / "x.png", ""
        )
    with pytest.raises(ClusteringError, match="unknown projection"):
        project_2d(np.eye(3), "umap")
    assert list(tmp_path.iterdir()) == []


def project_pca_reference(x):
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    centred = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:2].T


def test_pca_projection_matches_svd():
    emb, _, _ = blobs({"a": 3}, per_cluster=4)
    got, want = project_2d(emb), project_pca_reference(emb)
    # principal axes are defined up to sign
    assert np.allclose(np.abs(got), np.abs(want), atol=1e-8)


def write_corpus(folder, n_per_speaker=(6, 6), emotions=("ang", "sad")):
    rows = []
    for s, n in enumerate(n_per_speaker):
        for u in range(n):
            rows.append(
                {
                    "ID": f"s{s}_u{u}",
                    "duration": 0.3,
                    "wav": f"$data_root/s{s}_u{u}.wav",
                    "spk_id": f"s{s}",
                    "emo": emotions[u % len(emotions)],
                }
            )
    write_manifest(rows, str(folder / "m.csv"))
    return rows


def test_cli_with_embedding_file(tmp_path, capsys):
    rows = write_corpus(tmp_path)
    rows[-1]["emo"] = ""
    write_manifest(rows, str(tmp_path / "m.csv"))
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(2, 8))
    emb = np.stack(
        [centres[i % 2] + 0.02 * rng.normal(size=8) for i in range(len(rows))]
    )
    # extra ids in the file are fine; rows are matched by id
    ids = [r["ID"] for r in rows] + ["extra"]
    emb = np.vstack([emb, np.ones((1, 8))])
    order = rng.permutation(len(ids))
    save_embeddings(
        str(tmp_path / "e.npz"), [ids[i] for i in order], emb[order]
    )
    out = tmp_path / "out"
    status = main(
        [
            "--manifest",
            str(tmp_path / "m.csv"),
            "--embeddings",
            str(tmp_path / "e.npz"),
            "--out",
            str(out),
            "--k-range",
            "2",
            "4",
            "--speaker",
            "s1",
            "--shuffles",
            "5",
        ]
    )
    assert status == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "cluster_report.json",
        "cluster_report.md",
        "clusters.csv",
        "speaker_s1.png",
    ]
    with open(out / "clusters.csv", newline="") as f:
        written = list(csv.DictReader(f))
    expected = cluster_speakers(
        emb[: len(rows)], [r["spk_id"] for r in rows], k_range=(2, 4)
    )
    assert [w["ID"] for w in written] == [r["ID"] for r in rows]
    assert [w["cluster"] for w in written] == expected.ids
    assert written[-1]["emo"] == ""
    report = json.loads((out / "cluster_report.json").read_text())
    assert report["clustering"]["k"] == {"s0": 2, "s1": 2}
    assert report["overall"]["purity"] == pytest.approx(1.0)
    assert report["macro"]["nmi"] == pytest.approx(1.0)
    assert report["n_labelled"] == len(rows) - 1
    assert "| s1 | 6 | 5 | 2 |" in (out / "cluster_report.md").read_text()
    assert "nmi 1.000" in capsys.readouterr().out.splitlines()[-1]


def test_cli_missing_ids_fails_clearly(tmp_path, capsys):
    rows = write_corpus(tmp_path)
    save_embeddings(
        str(tmp_path / "e.pt"),
        [r["ID"] for r in rows[2:]],
        torch.randn(len(rows) - 2, 4),
    )
    out = tmp_path / "out"
    status = main(
        [
            "--manifest",
            str(tmp_path / "m.csv"),
            "--embeddings",
            str(tmp_path / "e.pt"),
            "--out",
            str(out),
        ]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert "no embedding for 2 of 12 manifest row(s): 's0_u0', 's0_u1'" in err
    assert "Traceback" not in err
    assert not out.exists()


def test_cli_unknown_speaker_and_bad_k(tmp_path, capsys):
    rows = write_corpus(tmp_path)
    save_embeddings(
        str(tmp_path / "e.npz"),
        [r["ID"] for r in rows],
        torch.randn(len(rows), 4),
    )
    base = ["--manifest", str(tmp_path / "m.csv")]
    base += ["--embeddings", str(tmp_path / "e.npz")]
    base += ["--out", str(tmp_path / "out")]
    assert main(base + ["--speaker", "nobody"]) == 1
    assert "speaker 'nobody' has no utterance" in capsys.readouterr().err
    assert main(base + ["--k", "0"]) == 1
    assert "k must be a positive integer" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


SIZES = {
    "n_mels": 20,
    "channels": [16, 16, 16, 16, 48],
    "attention_channels": 8,
    "se_channels": 8,
    "lin_neurons": 8,
}


def size_options(sizes):
    return [
        "--n-mels",
        str(sizes["n_mels"]),
        "--channels",
        *map(str, sizes["channels"]),
        "--attention-channels",
        str(sizes["attention_channels"]),
        "--se-channels",
        str(sizes["se_channels"]),
        "--lin-neurons",
        str(sizes["lin_neurons"]),
    ]


@pytest.fixture
def tiny_model(tmp_path):
    torch.manual_seed(0)
    model = ECAPA_TDNN(
        input_size=SIZES["n_mels"],
        channels=SIZES["channels"],
        attention_channels=SIZES["attention_channels"],
        se_channels=SIZES["se_channels"],
        lin_neurons=SIZES["lin_neurons"],
    )
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(model.state_dict(), folder / "embedding_model.ckpt")
    rows = write_corpus(tmp_path, n_per_speaker=(3, 1))
    rng = np.random.default_rng(0)
    for i, row in enumerate(rows):
        n = 3200 + 800 * i
        audio = 0.1 * rng.standard_normal(n) * (1 + i)
        soundfile.write(str(tmp_path / f"{row['ID']}.wav"), audio, 16000)
    return model.eval(), folder, rows


def reference_embedding(model, path):
    audio, _ = soundfile.read(str(path), dtype="float32")
    wav = torch.from_numpy(audio)[None]
    lens = torch.ones(1)
    norm = InputNormalization(norm_type="sentence", std_norm=False)
    with torch.no_grad():
        feats = norm(Fbank(n_mels=SIZES["n_mels"])(wav), lens)
        return model(feats, lens).reshape(-1)


def test_cli_with_model_folder(tmp_path, tiny_model, capsys):
    model, folder, rows = tiny_model
    out = tmp_path / "out"
    args = ["--manifest", str(tmp_path / "m.csv"), "--model", str(folder)]
    args += ["--out", str(out), "--batch-size", "1", "--device", "cpu"]
    assert main(args + size_options(SIZES)) == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == [
        "cluster_report.json",
        "cluster_report.md",
        "clusters.csv",
        "embeddings.npz",
        "speaker_s0.png",
    ]
    ids, emb = load_embeddings(str(out / "embeddings.npz"))
    assert ids == [r["ID"] for r in rows]
    assert emb.shape == (4, SIZES["lin_neurons"])
    for uid, vector in zip(ids, emb):
        want = reference_embedding(model, tmp_path / f"{uid}.wav")
        assert torch.allclose(vector, want, atol=1e-5)
    report = json.loads((out / "cluster_report.json").read_text())
    # three utterances allow k = 2 only; one utterance gets one cluster
    assert report["clustering"]["k"] == {"s0": 2, "s1": 1}


def test_cli_model_size_mismatch_fails_clearly(tmp_path, tiny_model, capsys):
    _, folder, _ = tiny_model
    out = tmp_path / "out"
    args = ["--manifest", str(tmp_path / "m.csv"), "--model", str(folder)]
    args += ["--out", str(out), "--device", "cpu"]
    wider = dict(SIZES, lin_neurons=16)
    assert main(args + size_options(wider)) == 1
    err = capsys.readouterr().err
    assert "shape mismatch" in err and "Traceback" not in err
    odd = dict(SIZES, channels=[16, 12, 16, 16, 48])
    assert main(args + size_options(odd)) == 1
    assert "multiples of 8" in capsys.readouterr().err
    assert not out.exists()
