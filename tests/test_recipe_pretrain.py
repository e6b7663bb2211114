"""Cluster-guided contrastive pretraining and its hand-over to fine-tuning."""

import csv
import logging
import os
import re
import runpy
import sys
from collections import Counter
from types import SimpleNamespace

import pytest
import speechbrain as sb
import torch
from recipe_scripts import load_recipe
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from emotion_invariant.augment.views import to_views
from emotion_invariant.clustering import (
    ClusteringError,
    cluster_speakers,
    read_clusters,
)
from emotion_invariant.clustering.analysis import ecapa_embedder
from emotion_invariant.corpora.prepare import prepare
from emotion_invariant.data.cluster_sampler import PretrainError
from emotion_invariant.data.labels import label_budget
from emotion_invariant.data.manifest import (
    ManifestError,
    read_manifest,
    write_manifest,
)
from emotion_invariant.hparams import load_hparams
from emotion_invariant.losses.supcon import SupConLoss, speaker_supcon
from emotion_invariant.models.pretrained import load_pretrained_encoder
from emotion_invariant.scoring import extract_embeddings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "emotion_recognition")
HPARAMS = os.path.join(ROOT, "hparams", "emotion_recognition")
PRETRAIN_YAML = os.path.join(HPARAMS, "pretrain_cluster_contrastive.yaml")
SPEAKER_SIZES = {
    "n_mels": 24,
    "channels": [16, 16, 16, 16, 48],
    "attention_channels": 8,
    "se_channels": 8,
    "lin_neurons": 16,
}
ENCODER = [
    "--channels=[16, 16, 16, 16, 48]",
    "--attention_channels=8",
    "--lin_neurons=16",
    "--n_mels=24",
    "--max_train_len=1.0",
]


@pytest.fixture(scope="module")
def pretrain():
    return load_recipe("emotion_recognition", "pretrain")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny convolutions run faster on one thread than on a busy two."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data(tiny_corpus, tmp_path_factory):
    """Prepared manifests, a half-unlabelled pretraining manifest, a
    clusters.csv (one cluster per speaker and emotion) and a tiny ECAPA."""
    folder = tmp_path_factory.mktemp("pretrain_data")
    manifests = folder / "manifests"
    prepare("synth", str(tiny_corpus), str(manifests))
    rows = read_manifest(manifests / "synth_train.csv")
    truth = {row["ID"]: f"{row['spk_id']}:{row['emo']}" for row in rows}
    unlabelled = [
        dict(row, emo="" if i % 2 else row["emo"]) for i, row in enumerate(rows)
    ]
    write_manifest(unlabelled, str(folder / "pretrain.csv"))
    with open(folder / "clusters.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "spk_id", "emo", "cluster"])
        for row in reversed(unlabelled):  # any order, matched by ID
            writer.writerow(
                [row["ID"], row["spk_id"], row["emo"], truth[row["ID"]]]
            )
    ecapa = folder / "ecapa"
    ecapa.mkdir()
    torch.manual_seed(0)
    model = ECAPA_TDNN(
        input_size=SPEAKER_SIZES["n_mels"],
        channels=SPEAKER_SIZES["channels"],
        kernel_sizes=[5, 3, 3, 3, 1],
        dilations=[1, 2, 3, 4, 1],
        attention_channels=SPEAKER_SIZES["attention_channels"],
        se_channels=SPEAKER_SIZES["se_channels"],
        lin_neurons=SPEAKER_SIZES["lin_neurons"],
    )
    torch.save(model.state_dict(), ecapa / "embedding_model.ckpt")
    return SimpleNamespace(
        corpus=str(tiny_corpus),
        manifests=manifests,
        pretrain=folder / "pretrain.csv",
        clusters=folder / "clusters.csv",
        truth=truth,
        ecapa=ecapa,
    )


def _argv(data, out, *extra):
    """The recipe's command line; ``extra`` replaces a default's key."""
    defaults = [
        f"--data_folder={data.corpus}",
        f"--output_folder={out}",
        f"--manifest_folder={data.manifests}",
        "--skip_prep=true",
        f"--pretrain_annotation={data.pretrain}",
        "--spk_hidden=16",
        "--anchors_per_speaker=3",
        "--speakers_per_batch=2",
        "--norm_type=sentence",  # as make pretraining runs both stages
        *ENCODER,
    ]
    given = {arg.split("=")[0] for arg in extra}
    kept = [arg for arg in defaults if arg.split("=")[0] not in given]
    return [PRETRAIN_YAML, *kept, *extra]


def _sizes_override():
    body = ", ".join(f"{k}: {v}" for k, v in SPEAKER_SIZES.items())
    return f"--speaker_model_sizes={{{body}}}"


@pytest.fixture(scope="module")
def model_run(pretrain, data, tmp_path_factory):
    """Clusters from the ECAPA folder, speaker adversary, --debug."""
    out = tmp_path_factory.mktemp("pretrain_model")
    argv = _argv(
        data,
        out,
        f"--speaker_model={data.ecapa}",
        _sizes_override(),
        "--multitask=adversary",
        "--debug",
    )
    return out, argv, pretrain.main(argv)


@pytest.fixture(scope="module")
def file_run(pretrain, data, tmp_path_factory):
    """Clusters from a file, speaker multi-task, one full epoch."""
    out = tmp_path_factory.mktemp("pretrain_file")
    argv = _argv(
        data,
        out,
        f"--clusters_file={data.clusters}",
        "--multitask=speaker",
        "--number_of_epochs=1",
    )
    return out, argv, pretrain.main(argv)


def _train_stats(log, key):
    return [float(x) for x in re.findall(rf"train {key}: ([0-9.e+-]+)", log)]


def test_debug_run_clusters_from_speaker_model(model_run, data):
    out, _, encoder_file = model_run
    rows = read_manifest(data.pretrain, allow_empty_emo=True)
    assert sum(not row["emo"] for row in rows) == len(rows) // 2
    with open(out / "clusters" / "clusters.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["ID"] for r in written] == [row["ID"] for row in rows]
    # The clusters are those of the speaker model's embeddings.
    embed = ecapa_embedder(str(data.ecapa), device="cpu", **SPEAKER_SIZES)
    _, emb = extract_embeddings(  # batched as eval_batch_size: 32
        rows,
        embed,
        batch_size=32,
        device="cpu",
        data_root=data.corpus,
        progress=False,
    )
    speakers = [row["spk_id"] for row in rows]
    expected = cluster_speakers(emb, speakers, k_range=(2, 6), seed=0).ids
    assert [r["cluster"] for r in written] == expected

    log = (out / "train_log.txt").read_text()
    supcon = _train_stats(log, "supcon")
    assert len(supcon) == 2 and all(v > 0 for v in supcon)
    assert len(_train_stats(log, "spk_ce")) == 2
    lambdas = _train_stats(log, "lambda")
    assert lambdas[1] > lambdas[0] > 0  # the reversal ramps up
    assert f"({len(rows) // 2} unlabelled)" in (out / "log.txt").read_text()
    assert encoder_file == str(out / "encoder.ckpt")


def test_pretraining_changes_the_encoder(model_run, pretrain):
    """encoder.ckpt is the trained encoder, not its initial weights."""
    _, argv, encoder_file = model_run
    _, _, overrides = sb.parse_arguments(argv)
    fresh = load_hparams(PRETRAIN_YAML, overrides)[0]["embedding_model"]
    initial = {k: v.clone() for k, v in fresh.state_dict().items()}
    load_pretrained_encoder(encoder_file, fresh)
    trained = torch.load(encoder_file, weights_only=True)
    for key, value in fresh.state_dict().items():
        torch.testing.assert_close(value, trained[key])
    assert any(
        not torch.equal(initial[k], trained[k])
        for k in initial
        if initial[k].is_floating_point()
    )


def _cluster_of(data, uid):
    return data.truth[uid]


def test_positives_share_speaker_and_cluster(pretrain, data, tmp_path):
    argv = _argv(data, tmp_path, f"--clusters_file={data.clusters}")
    brain, hparams, dataset = pretrain.build(argv)
    rows = read_manifest(data.pretrain, allow_empty_emo=True)
    sampler = hparams["batch_sampler"]
    counter = hparams["epoch_counter"]
    draws = {}
    for epoch in (1, 2):
        counter.current = epoch
        sampler.set_epoch(epoch)
        batches = list(sampler)
        anchors = [i for batch in batches for i in batch]
        assert sorted(anchors) == list(range(len(rows)))
        for batch in batches:
            by_speaker = {}
            for i in batch:
                item = dataset[i]
                uid, pos = item["id"], item["pos_id"]
                assert pos != uid
                assert _cluster_of(data, pos) == _cluster_of(data, uid)
                draws[epoch, uid] = pos
                by_speaker.setdefault(rows[i]["spk_id"], set()).add(
                    _cluster_of(data, uid)
                )
            # Each speaker's anchors of a batch hold within-speaker
            # negatives: more than one of its clusters.
            assert all(len(c) > 1 for c in by_speaker.values())
    # Labels: one integer per (speaker, cluster), the same for its rows.
    labels = {}
    for i, row in enumerate(rows):
        label = int(dataset[i]["label_encoded"])
        assert labels.setdefault(_cluster_of(data, row["ID"]), label) == label
    assert len(set(labels.values())) == len(labels)
    # Positives are redrawn each epoch, and the same seed redraws them.
    assert any(draws[1, u] != draws[2, u] for u in data.truth)
    counter.current = 1
    assert all(dataset[i]["pos_id"] == draws[1, rows[i]["ID"]] for i in anchors)
    assert hparams["contrast_all"] is False

    # The objective contrasts each speaker's rows among themselves.
    batch = sb.dataio.batch.PaddedBatch([dataset[i] for i in batches[0]])
    brain.on_stage_start(sb.Stage.TRAIN, epoch=1)
    with torch.no_grad():
        embeddings, _ = brain.compute_forward(batch, sb.Stage.TRAIN)
        loss = brain.compute_objectives(
            (embeddings, None), batch, sb.Stage.TRAIN
        )
    views = to_views(embeddings, 2)
    batch_labels = batch.label_encoded.data.squeeze(1)
    within = speaker_supcon(
        hparams["supcon"], views, batch_labels, batch.spk_encoded.data[:, 0]
    )
    torch.testing.assert_close(loss, within)
    assert float(hparams["supcon"](views, batch_labels)) != pytest.approx(
        float(within)
    )


def test_random_same_speaker_positives(pretrain, data, tmp_path):
    argv = _argv(
        data,
        tmp_path,
        "--positives=random_same_speaker",
        f"--clusters_file={data.clusters}",
    )
    _, hparams, dataset = pretrain.build(argv)
    rows = read_manifest(data.pretrain, allow_empty_emo=True)
    spk_of = {row["ID"]: row["spk_id"] for row in rows}
    crossed, speaker_of_label = 0, {}
    for i, row in enumerate(rows):
        item = dataset[i]
        assert spk_of[item["pos_id"]] == row["spk_id"] != item["pos_id"]
        crossed += _cluster_of(data, item["pos_id"]) != _cluster_of(
            data, row["ID"]
        )
        speaker_of_label.setdefault(int(item["label_encoded"]), set()).add(
            row["spk_id"]
        )
    # The label is the speaker: one label per speaker, one speaker a label.
    assert all(len(spk) == 1 for spk in speaker_of_label.values())
    assert len(speaker_of_label) == len(set(spk_of.values()))
    assert crossed > 0  # positives ignore the clusters
    assert hparams["contrast_all"] is True  # negatives: other speakers


def _naive_supcon(features, labels, groups, temperature):
    """Khosla's loss with the contrast set cut to the anchor's group."""
    views = features.shape[1]
    rows = [(b, v) for v in range(views) for b in range(features.shape[0])]
    unit = torch.nn.functional.normalize(features, dim=-1)
    losses = []
    for b, v in rows:
        others = [
            (c, w)
            for c, w in rows
            if (c, w) != (b, v) and groups[c] == groups[b]
        ]
        if len({int(labels[c]) for c, _ in others} | {int(labels[b])}) < 2:
            continue
        logits = {
            o: float(unit[b, v] @ unit[o[0], o[1]]) / temperature
            for o in others
        }
        log_norm = torch.logsumexp(torch.tensor(list(logits.values())), 0)
        positives = [o for o in others if labels[o[0]] == labels[b]]
        losses.append(
            -sum(logits[o] - log_norm for o in positives) / len(positives)
        )
    return torch.tensor(losses).mean()


def test_within_speaker_loss_matches_reference(pretrain):
    torch.manual_seed(0)
    features = torch.randn(7, 2, 5)
    labels = torch.tensor([0, 1, 0, 2, 3, 3, 4])
    groups = torch.tensor([0, 0, 0, 1, 1, 1, 2])  # speaker 2: one row only
    loss_fn = SupConLoss(temperature=0.5, margin=0.0)
    got = speaker_supcon(loss_fn, features, labels, groups)
    assert float(got) == pytest.approx(
        float(_naive_supcon(features, labels, groups, 0.5)), rel=1e-5
    )
    every = torch.zeros(7, dtype=torch.long)
    assert float(speaker_supcon(loss_fn, features, labels)) == pytest.approx(
        float(_naive_supcon(features, labels, every, 0.5))
    )
    # A speaker with a single cluster has no negative: no loss, no gradient.
    features.requires_grad_(True)
    alone = speaker_supcon(
        loss_fn, features[:2], torch.tensor([1, 1]), torch.tensor([0, 0])
    )
    alone.backward()
    assert float(alone) == 0 and float(features.grad.abs().sum()) == 0


def test_label_budget(pretrain):
    rows = [
        {"ID": f"u{i}", "emo": emo}
        for i, emo in enumerate(["ang"] * 20 + ["sad"] * 7 + ["neu"] * 2)
    ]
    for fraction in (0.1, 0.25, 0.5, 1.0):
        kept = label_budget(rows, fraction, seed=3)
        counts = Counter(row["emo"] for row in kept)
        assert counts == {
            emo: max(1, round(fraction * n))
            for emo, n in Counter(row["emo"] for row in rows).items()
        }
        order = [rows.index(row) for row in kept]
        assert order == sorted(order)
        assert kept == label_budget(rows, fraction, seed=3)
    draws = {
        tuple(r["ID"] for r in label_budget(rows, 0.25, seed=s))
        for s in range(5)
    }
    assert len(draws) > 1
    for bad in (0.0, 1.5):
        with pytest.raises(ValueError, match="label_fraction must be in"):
            label_budget(rows, bad)
    rows[4]["emo"] = ""
    with pytest.raises(ManifestError, match=r"t.csv line 6 \(ID u4\): no emo"):
        label_budget(rows, 0.5, source="t.csv")


def _ser_argv(data, out, train, *extra):
    manifests = data.manifests
    argv = [
        os.path.join(HPARAMS, "ser_baseline.yaml"),
        f"--data_folder={data.corpus}",
        f"--output_folder={out}",
        f"--manifest_folder={manifests}",
        "--skip_prep=true",
        f"--train_annotation={train}",
        f"--valid_annotation={manifests / 'synth_dev.csv'}",
        f"--test_annotation={manifests / 'synth_test.csv'}",
        "--emo_hidden=16",
        "--adv_hidden=16",
        "--batch_size=4",
        "--eval_batch_size=8",
        *ENCODER,
        *extra,
    ]
    if not any(arg.startswith("--norm_type=") for arg in extra):
        argv.append("--norm_type=sentence")  # the pretraining's
    return argv


def test_finetune_from_pretrained_encoder(pretrain, file_run, data, tmp_path):
    """The SER recipe's encoder takes the pretrained weights, embeds as the
    pretrained one did, and fine-tunes on a label budget."""
    out, argv, encoder_file = file_run
    log = (out / "train_log.txt").read_text()
    assert _train_stats(log, "spk_acc") and _train_stats(log, "supcon")
    # The checkpoint folder holds the same encoder as encoder.ckpt.
    ckpt_model = load_hparams(PRETRAIN_YAML, sb.parse_arguments(argv)[2])[0]
    load_pretrained_encoder(out / "save", ckpt_model["embedding_model"])
    saved = torch.load(encoder_file, weights_only=True)
    for key, value in ckpt_model["embedding_model"].state_dict().items():
        torch.testing.assert_close(value, saved[key])

    train = read_manifest(data.manifests / "synth_train.csv")
    budget = label_budget(train, 0.5, seed=0, source="train")
    write_manifest(budget, str(tmp_path / "train_budget.csv"))
    recipe = load_recipe("emotion_recognition", "train")
    ser_argv = _ser_argv(
        data, tmp_path / "ser", tmp_path / "train_budget.csv", "--debug"
    )
    brain, hparams, datasets = recipe.build(ser_argv)
    assert hparams["steps_per_epoch"] == len(budget) // 4
    assert len(datasets["train"]) == len(budget) == len(train) // 2
    used = load_pretrained_encoder(out, hparams["embedding_model"])
    assert used == str(out / "encoder.ckpt")

    pre_brain, _, _ = pretrain.build(argv)
    load_pretrained_encoder(encoder_file, pre_brain.hparams.embedding_model)
    wavs = torch.randn(2, 16000) * 0.1
    lens = torch.tensor([1.0, 0.7])
    brain.modules.eval()
    pre_brain.modules.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            brain.embed(wavs, lens), pre_brain.embed(wavs, lens)
        )
    recipe.fit(brain, hparams, datasets)
    ser_log = (tmp_path / "ser" / "train_log.txt").read_text()
    assert len(re.findall(r"valid UA: ", ser_log)) == 2


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_finetune_warns_of_another_normalisation(file_run, data, tmp_path):
    """Fine-tuning on features normalised unlike the pretraining's is
    allowed, and said; the same normalisation says nothing."""
    out = file_run[0]
    recipe = load_recipe("emotion_recognition", "train")
    train = data.manifests / "synth_train.csv"
    # build() runs SpeechBrain's logging set-up, whose dictConfig replaces
    # the root handlers (caplog's among them): listen on the loader's logger.
    records = _Records()
    logging.getLogger("emotion_invariant.models.pretrained").addHandler(records)
    try:
        for norm, warned in (("global", True), ("sentence", False)):
            records.messages.clear()
            argv = _ser_argv(
                data,
                tmp_path / norm,
                train,
                f"--pretrained_encoder={out / 'save'}",
                f"--norm_type={norm}",
            )
            recipe.build(argv)
            said = [m for m in records.messages if "was pretrained with" in m]
            assert bool(said) is warned, norm
            if warned:
                assert "norm_type: sentence, this run uses" in said[0]
    finally:
        logging.getLogger("emotion_invariant.models.pretrained").removeHandler(
            records
        )


def test_finetune_rejects_unlabelled_rows(data, tmp_path):
    rows = read_manifest(data.manifests / "synth_train.csv")
    rows[3] = dict(rows[3], emo="")
    write_manifest(rows, str(tmp_path / "train.csv"))
    recipe = load_recipe("emotion_recognition", "train")
    argv = _ser_argv(data, tmp_path / "ser", tmp_path / "train.csv")
    with pytest.raises(ManifestError, match=rf"line 5 \(ID {rows[3]['ID']}\)"):
        recipe.build(argv)
    assert not (tmp_path / "ser" / "train_log.txt").exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--positives=emotion"], "positives must be one of"),
        (["--multitask=both"], "multitask must be one of"),
        ([], "positives: cluster needs clusters"),
        (["--clusters_file=c.csv", "--speaker_model=m"], "not both"),
        (
            ["--clusters_file=c.csv", "--anchors_per_speaker=1"],
            "anchors_per_speaker must be >= 2",
        ),
        (
            ["--speaker_model=m", "--speaker_model_sizes={channel: 8}"],
            "unknown key.s. channel",
        ),
    ],
)
def test_bad_settings_fail_before_anything_runs(
    pretrain, data, tmp_path, extra, message
):
    with pytest.raises(PretrainError, match=message):
        pretrain.build(_argv(data, tmp_path, *extra))
    assert not tmp_path.joinpath("train_log.txt").exists()
    # The command fails before preparing the corpus too.
    with pytest.raises(PretrainError, match=message):
        pretrain.main(_argv(data, tmp_path / "cli", *extra))
    assert not tmp_path.joinpath("cli", "log.txt").exists()


def test_held_out_speakers_are_refused(pretrain, data, tmp_path):
    everything = data.manifests / "synth.csv"
    argv = _argv(
        data,
        tmp_path,
        f"--clusters_file={data.clusters}",
        f"--pretrain_annotation={everything}",
    )
    test_spk = sorted(
        {r["spk_id"] for r in read_manifest(data.manifests / "synth_test.csv")}
    )
    with pytest.raises(ManifestError, match=f"speaker.s. {test_spk[0]}"):
        pretrain.build(argv)


def test_bad_clusters_files(pretrain, data, tmp_path):
    rows = read_manifest(data.pretrain, allow_empty_emo=True)
    text = data.clusters.read_text().splitlines()
    cases = {
        "missing.csv": (text[:-1], "no cluster for 1 of 24 manifest row"),
        "dup.csv": (text + text[-1:], "duplicate ID, first on line"),
        "nocol.csv": (["ID,spk_id"] + text[1:], "missing column.s. cluster"),
        "spk.csv": (
            [text[0], re.sub(r",spk\d+,", ",nobody,", text[1], count=1)]
            + text[2:],
            "speaker 'nobody', but the manifest says",
        ),
    }
    for name, (lines, message) in cases.items():
        path = tmp_path / name
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(ClusteringError, match=message):
            read_clusters(str(path), rows)
    ids = read_clusters(str(data.clusters), rows)
    assert ids == [f"{row['spk_id']}/{data.truth[row['ID']]}" for row in rows]


def test_command_line_error_is_one_line(data, tmp_path, capsys, monkeypatch):
    argv = _argv(data, tmp_path, "--multitask=both")
    monkeypatch.setattr(sys, "argv", ["pretrain.py", *argv])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(os.path.join(RECIPE, "pretrain.py"), run_name="__main__")
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: multitask must be one of")
    assert not any("Traceback" in line for line in err)


def test_fold_pretrains_on_the_folds_training_speakers(
    pretrain, data, tmp_path
):
    """``--fold K`` pretrains on fold K's training speakers only, as the
    emotion recipe splits them, and writes fold_K/encoder.ckpt."""
    argv = [
        arg
        for arg in _argv(data, tmp_path, "--positives=random_same_speaker")
        if not arg.startswith("--pretrain_annotation=")
    ] + ["--fold=2", "--n_folds=3", "--debug"]
    _, hparams, _ = pretrain.build(argv, "2")
    manifests = tmp_path / "fold_2" / "manifests"
    assert hparams["pretrain_annotation"] == str(manifests / "train.csv")
    train = {r["spk_id"] for r in read_manifest(manifests / "train.csv")}
    test = {r["spk_id"] for r in read_manifest(manifests / "test.csv")}
    assert set(hparams["pretrain_speakers"]) == train
    assert train and test and not train & test
    assert pretrain.main(argv) == str(tmp_path / "fold_2" / "encoder.ckpt")
    assert (tmp_path / "fold_2" / "encoder.ckpt").is_file()
    assert not (tmp_path / "encoder.ckpt").exists()
