"""Smoke runs of the speaker-verification recipe on the tiny corpus."""

import json
import os
from collections import Counter

import pytest
import speechbrain as sb
import torch
from fake_corpora import TINY_ECAPA
from recipe_scripts import load_recipe
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

from emotion_invariant.data.manifest import read_manifest
from emotion_invariant.models.pretrained import PretrainedError
from emotion_invariant.scoring import load_embeddings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPE = os.path.join(ROOT, "recipes", "speaker_verification")
HPARAMS = os.path.join(ROOT, "hparams", "speaker_verification")
TINY_MODEL = TINY_ECAPA


def _run(yaml, corpus, out, *extra):
    argv = [
        os.path.join(HPARAMS, yaml),
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        *TINY_MODEL,
        *extra,
    ]
    return load_recipe("speaker_verification").main(argv)


def _scored_as_is(corpus, out, pretrained, *extra):
    """The baseline recipe trained for no epoch: the pretrained model in
    ``pretrained`` evaluated as it is."""
    return _run(
        "ecapa_baseline.yaml",
        corpus,
        out,
        "--number_of_epochs=0",
        f"--pretrained_path={pretrained}",
        *extra,
    )


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
    recipe = load_recipe("speaker_verification")
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
    train = read_manifest(str(tmp_path / "manifests" / "synth_train.csv"))
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

    recipe = load_recipe("speaker_verification")
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
    load_recipe("speaker_verification").main(argv)

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
    _scored_as_is(tiny_corpus, out, tmp_path / "pretrained")
    ids, emb = load_embeddings(str(out / "eval" / "embeddings.npz"))
    from emotion_invariant.data.audio import read_audio
    from emotion_invariant.data.manifest import read_manifest

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
        _scored_as_is(tiny_corpus, tmp_path / "run", folder)


def _published_tiny(folder):
    """A tiny model in the published layout, label_encoder.ckpt included."""
    model = _pretrained_folder(folder)
    encoder = sb.dataio.encoder.CategoricalEncoder()
    encoder.update_from_iterable(["id00001", "id00002"])
    encoder.save(folder / "label_encoder.ckpt")
    return {k: v.clone() for k, v in model.state_dict().items()}


def _trained_checkpoint(out):
    ckpts = sb.utils.checkpoints.Checkpointer(str(out / "save"))
    newest = max(ckpts.list_checkpoints(), key=lambda c: c.meta["unixtime"])
    return {
        name: torch.load(newest.path / f"{name}.ckpt", weights_only=True)
        for name in ("embedding_model", "classifier")
    }


@pytest.mark.parametrize("target", ["pretrained", "neutral"])
def test_finetuning_keeps_what_is_frozen(tiny_corpus, tmp_path, target):
    """Frozen lower stages stay as pretrained, batch norms keep their
    running statistics; the rest trains, with every fine-tuning loss."""
    pretrained = _published_tiny(tmp_path / "pretrained")
    out = tmp_path / "run"
    _run(
        "ecapa_emotion_invariant.yaml",
        tiny_corpus,
        out,
        "--number_of_epochs=1",
        f"--pretrained_path={tmp_path / 'pretrained'}",
        "--freeze_blocks=2",
        "--freeze_bn=True",
        "--head_init=imprint",
        "--l2sp_weight=0.01",
        "--distill_weight=1.0",
        f"--erl_target={target}",
    )
    state = _trained_checkpoint(out)["embedding_model"]
    for key, value in pretrained.items():
        if key.startswith(("blocks.0.", "blocks.1.")) or "running" in key:
            assert torch.equal(state[key], value), key
    trained = [k for k in pretrained if k.startswith("blocks.2.")]
    assert any(not torch.equal(state[k], pretrained[k]) for k in trained)
    log = (out / "train_log.txt").read_text()
    for term in ("aam", "erl", "distill", "l2sp"):
        assert f"train {term}" in log, term


def test_head_warmup_trains_the_head_alone(tiny_corpus, tmp_path):
    pretrained = _published_tiny(tmp_path / "pretrained")
    out = tmp_path / "run"
    _run(
        "ecapa_baseline.yaml",
        tiny_corpus,
        out,
        "--number_of_epochs=1",
        f"--pretrained_path={tmp_path / 'pretrained'}",
        "--head_warmup_steps=1000",
    )
    state = _trained_checkpoint(out)
    for key, value in pretrained.items():  # running statistics included
        assert torch.equal(state["embedding_model"][key], value), key
    _, optim = _final_state(out)
    # Adam keeps state only for tensors that got a gradient: the head's
    assert len(optim["state"]) == 1, optim["state"].keys()


@pytest.mark.parametrize("emotion", [None, "neu"])
def test_head_and_neutral_targets_are_speaker_means(
    tiny_corpus, tmp_path, emotion
):
    """``head_init: imprint`` starts each AAM row at the speaker's mean
    pretrained embedding; ``erl_target: neutral`` targets the mean of the
    speaker's neutral utterances."""
    _published_tiny(tmp_path / "pretrained")
    argv = [
        os.path.join(HPARAMS, "ecapa_emotion_invariant.yaml"),
        f"--data_folder={tiny_corpus}",
        f"--output_folder={tmp_path / 'run'}",
        *TINY_MODEL,
        f"--pretrained_path={tmp_path / 'pretrained'}",
        "--head_init=imprint",
        "--erl_target=neutral",
        "--imprint_utterances=1000",  # every utterance of the tiny corpus
    ]
    recipe = load_recipe("speaker_verification")
    brain, hparams, _, _ = recipe.build(argv)
    rows = read_manifest(hparams["train_annotation"])
    if emotion is None:
        weight = brain.modules.classifier.weight.detach()
    else:
        weight = hparams["neutral_targets"]
    brain.modules.eval()
    from emotion_invariant.data.audio import read_audio

    encoder = sb.dataio.encoder.CategoricalEncoder()
    encoder.load(tmp_path / "run" / "save" / "label_encoder.txt")
    for speaker in sorted({row["spk_id"] for row in rows}):
        chosen = [
            r
            for r in rows
            if r["spk_id"] == speaker and emotion in (None, r["emo"])
        ]
        with torch.no_grad():
            units = []
            for row in chosen:
                wav = read_audio(row, str(tiny_corpus))[None]
                emb = brain.embed(wav, torch.ones(1)).squeeze()
                units.append(emb / emb.norm())
        mean = torch.stack(units).mean(0)
        row = weight[encoder.lab2ind[speaker]]
        # unit rows; zero padding in the batches moves the means slightly
        torch.testing.assert_close(row.norm(), torch.tensor(1.0))
        cos = torch.nn.functional.cosine_similarity(row, mean, 0)
        assert cos > 0.999, (speaker, cos)


def test_zero_shot_evaluation(tiny_corpus, tmp_path):
    """evaluate.py with no checkpoint scores the pretrained model as is."""
    _published_tiny(tmp_path / "pretrained")
    evaluate = load_recipe("speaker_verification", "evaluate")
    common = [
        os.path.join(HPARAMS, "ecapa_baseline.yaml"),
        f"--data_folder={tiny_corpus}",
        *TINY_MODEL,
        "--experiment=zero_shot",
    ]
    report = evaluate.main(
        [
            *common,
            f"--output_folder={tmp_path / 'zs'}",
            f"--pretrained_path={tmp_path / 'pretrained'}",
        ]
    )
    eval_dir = tmp_path / "zs" / "eval"
    for name in ("report.json", "report.md", "emotion_eer.png", "scores.txt"):
        assert (eval_dir / name).is_file(), name
    assert report["title"] == "zero_shot"
    assert not list((tmp_path / "zs" / "save").glob("CKPT+*"))
    # the same embeddings as a run with nothing to train
    _scored_as_is(tiny_corpus, tmp_path / "none", tmp_path / "pretrained")
    a = load_embeddings(str(eval_dir / "embeddings.npz"))
    b = load_embeddings(str(tmp_path / "none" / "eval" / "embeddings.npz"))
    assert a[0] == b[0]
    torch.testing.assert_close(a[1], b[1])
    with pytest.raises(ValueError, match="no checkpoint and no pretrained"):
        evaluate.main([*common, f"--output_folder={tmp_path / 'empty'}"])


def test_evaluating_a_save_folder_without_checkpoint_is_an_error(
    tiny_corpus, tmp_path
):
    """``--save_folder`` names the run to score (the suite's +nap systems):
    when that run left no checkpoint (it failed), the published model must
    not be scored under its name."""
    _published_tiny(tmp_path / "pretrained")
    failed = tmp_path / "failed" / "save"
    failed.mkdir(parents=True)  # as a run stopped before its first epoch
    evaluate = load_recipe("speaker_verification", "evaluate")
    out = tmp_path / "nap"
    with pytest.raises(ValueError) as info:
        evaluate.main(
            [
                os.path.join(HPARAMS, "ecapa_baseline.yaml"),
                f"--data_folder={tiny_corpus}",
                *TINY_MODEL,
                f"--output_folder={out}",
                f"--save_folder={failed}",
                f"--pretrained_path={tmp_path / 'pretrained'}",
                "--emotion_nap_dims=2",
            ]
        )
    assert str(info.value).startswith(f"save_folder {failed}: no checkpoint")
    assert not (out / "eval").exists()
    assert list(failed.iterdir()) == []


def test_evaluating_the_save_folder_of_a_run_in_progress_is_an_error(
    tiny_corpus, tmp_path
):
    """Its checkpoints are not the run's result yet (an orphaned trainer
    of a killed suite may still be writing them)."""
    import subprocess
    import sys

    from emotion_invariant.runlock import RunFolderLocked

    _published_tiny(tmp_path / "pretrained")
    running = tmp_path / "running"
    (running / "save").mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from emotion_invariant.runlock import "
            "acquire_run_lock; acquire_run_lock(sys.argv[1]); "
            "print('locked', flush=True); sys.stdin.read()",
            str(running),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        evaluate = load_recipe("speaker_verification", "evaluate")
        with pytest.raises(RunFolderLocked) as info:
            evaluate.main(
                [
                    os.path.join(HPARAMS, "ecapa_baseline.yaml"),
                    f"--data_folder={tiny_corpus}",
                    *TINY_MODEL,
                    f"--output_folder={tmp_path / 'nap'}",
                    f"--save_folder={running / 'save'}",
                    f"--pretrained_path={tmp_path / 'pretrained'}",
                ]
            )
    finally:
        holder.stdin.close()
        holder.wait()
    message = str(info.value)
    assert message.startswith(f"save_folder {running / 'save'}: its run ")
    assert f"in use by pid {holder.pid} " in message
    assert not (tmp_path / "nap" / "eval").exists()


def test_fold_run_tests_on_the_folds_speakers(tiny_corpus, tmp_path):
    _run(
        "ecapa_baseline.yaml",
        tiny_corpus,
        tmp_path,
        "--debug",
        "--fold=2",
        "--n_folds=3",
        "--fold_dev_fraction=0.5",
    )
    folder = tmp_path / "manifests" / "fold_2"
    speakers = {
        name: {r["spk_id"] for r in read_manifest(str(folder / name))}
        for name in ("train.csv", "dev.csv", "test.csv")
    }
    assert len(speakers["test.csv"]) == 2
    assert not speakers["test.csv"] & (
        speakers["train.csv"] | speakers["dev.csv"]
    )
    trial_ids = {
        uid
        for line in (folder / "trials.txt").read_text().splitlines()
        for uid in line.split()[1:3]
    }
    test_ids = {r["ID"] for r in read_manifest(str(folder / "test.csv"))}
    assert trial_ids <= test_ids
    scored = (tmp_path / "eval" / "scores.txt").read_text().splitlines()
    assert len(scored) == len((folder / "trials.txt").read_text().splitlines())


def test_emotion_nap_at_evaluation(tiny_corpus, tmp_path):
    """``emotion_nap_dims`` fits the training speakers' emotion directions
    and scores embeddings with them removed."""
    import numpy as np

    _published_tiny(tmp_path / "pretrained")
    out = tmp_path / "run"
    _scored_as_is(
        tiny_corpus, out, tmp_path / "pretrained", "--emotion_nap_dims=2"
    )
    basis = torch.from_numpy(np.load(out / "eval" / "nap.npz")["basis"])
    assert basis.shape == (2, 16)
    _, emb = load_embeddings(str(out / "eval" / "embeddings.npz"))
    assert (torch.as_tensor(emb) @ basis.T).abs().max() < 1e-4


def test_evaluate_another_runs_checkpoint_leaves_it_untouched(
    tiny_corpus, tmp_path
):
    """``--save_folder`` points evaluate.py at another run's checkpoints (the
    suite's +nap systems): it scores them as that run did and writes only
    into its own output folder."""
    source = tmp_path / "source"
    _run(
        "ecapa_baseline.yaml",
        tiny_corpus,
        source,
        "--number_of_epochs=1",
        "--utterances_per_epoch=8",
    )

    # log.txt aside: in this one process the first run's log handler
    # stays attached to it.
    def files(folder):
        return {
            p: p.stat().st_mtime_ns
            for p in folder.rglob("*")
            if p.is_file() and p.name != "log.txt"
        }

    before = files(source)
    evaluate = load_recipe("speaker_verification", "evaluate")
    evaluate.main(
        [
            os.path.join(HPARAMS, "ecapa_baseline.yaml"),
            f"--data_folder={tiny_corpus}",
            *TINY_MODEL,
            f"--output_folder={tmp_path / 'again'}",
            f"--save_folder={source / 'save'}",
        ]
    )
    a = load_embeddings(str(source / "eval" / "embeddings.npz"))
    b = load_embeddings(str(tmp_path / "again" / "eval" / "embeddings.npz"))
    assert a[0] == b[0]
    torch.testing.assert_close(a[1], b[1])
    assert files(source) == before


def test_scoring_backend_at_evaluation(tiny_corpus, tmp_path, monkeypatch):
    """``scoring_backend`` fits the back-end on the training speakers,
    saves it, maps the test embeddings and the score-normalisation cohort
    alike (a cohort left unmapped would normalise with scores of another
    space)."""
    import emotion_invariant.verification.evaluation as evaluation
    from emotion_invariant.backend import load_backend

    seen = {}
    score_trials = evaluation.score_trials

    def spy(embeddings, trials, cohort=None, **kwargs):
        seen["cohort"] = cohort
        return score_trials(embeddings, trials, cohort=cohort, **kwargs)

    monkeypatch.setattr(evaluation, "score_trials", spy)
    _published_tiny(tmp_path / "pretrained")
    out = tmp_path / "run"
    _scored_as_is(
        tiny_corpus,
        out,
        tmp_path / "pretrained",
        "--scoring_backend=within_speaker_nap",
        "--backend_dims=2",
        "--score_norm=as",
        "--score_topk=4",
    )
    backend = load_backend(out / "eval" / "backend.npz")
    assert backend.kind == "within_speaker_nap"
    basis = torch.as_tensor(backend.arrays["basis"])
    assert basis.shape == (2, 16)
    _, emb = load_embeddings(str(out / "eval" / "embeddings.npz"))
    assert (torch.as_tensor(emb) @ basis.T).abs().max() < 1e-4
    _, cohort = seen["cohort"]
    assert (torch.as_tensor(cohort) @ basis.T).abs().max() < 1e-4


@pytest.mark.parametrize("split", ["train", "dev"])
def test_scoring_backend_fit_split(tiny_corpus, tmp_path, monkeypatch, split):
    """``backend_fit_split`` names the speakers the back-end is fitted on:
    the training manifest's, or the dev manifest's (speakers a fine-tuning
    never saw), and no others."""
    import emotion_invariant.verification.evaluation as evaluation

    seen = {}
    fit = evaluation.fit

    def spy(kind, embeddings, speakers, *args, **kwargs):
        seen["speakers"] = set(speakers)
        return fit(kind, embeddings, speakers, *args, **kwargs)

    monkeypatch.setattr(evaluation, "fit", spy)
    _published_tiny(tmp_path / "pretrained")
    out = tmp_path / "run"
    _scored_as_is(
        tiny_corpus,
        out,
        tmp_path / "pretrained",
        "--scoring_backend=wccn",
        f"--backend_fit_split={split}",
    )
    name = {"train": "synth_train.csv", "dev": "synth_dev.csv"}[split]
    rows = read_manifest(str(out / "manifests" / name))
    assert seen["speakers"] == {row["spk_id"] for row in rows}
    others = read_manifest(
        str(
            out
            / "manifests"
            / ("synth_dev.csv" if split == "train" else "synth_train.csv")
        )
    )
    assert not seen["speakers"] & {row["spk_id"] for row in others}


def test_scoring_backend_and_emotion_nap_together_are_refused(
    tiny_corpus, tmp_path
):
    _published_tiny(tmp_path / "pretrained")
    with pytest.raises(ValueError, match="choose one"):
        _scored_as_is(
            tiny_corpus,
            tmp_path / "run",
            tmp_path / "pretrained",
            "--scoring_backend=wccn",
            "--emotion_nap_dims=2",
        )


def test_scoring_backend_chain_at_evaluation(tiny_corpus, tmp_path):
    """``scoring_backend: within_speaker_nap+wccn`` fits the NAP with
    ``backend_dims``, then WCCN with ``backend_shrinkage``, as one chain."""
    from emotion_invariant.backend import load_backend

    _published_tiny(tmp_path / "pretrained")
    out = tmp_path / "run"
    _scored_as_is(
        tiny_corpus,
        out,
        tmp_path / "pretrained",
        "--scoring_backend=within_speaker_nap+wccn",
        "--backend_dims=2",
        "--backend_shrinkage=0.7",
    )
    chain = load_backend(out / "eval" / "backend.npz")
    assert chain.kind == "chain"
    assert [m.kind for m in chain.members] == ["within_speaker_nap", "wccn"]
    assert chain.members[0].settings["dims"] == 2
    assert chain.members[1].settings["shrinkage"] == 0.7
    _, emb = load_embeddings(str(out / "eval" / "embeddings.npz"))
    assert torch.allclose(torch.as_tensor(emb).norm(dim=1), torch.ones(1))


def test_backend_evaluation_also_reports_without_it(tiny_corpus, tmp_path):
    """With a back-end, ``eval/without_backend/`` holds the same model's
    plain scores, equal to an evaluation without the back-end; evaluating
    the run again without one removes the back-end's files, which would
    otherwise read as the new evaluation's."""
    _published_tiny(tmp_path / "pretrained")
    common = (
        "--number_of_epochs=0",
        f"--pretrained_path={tmp_path / 'pretrained'}",
    )
    _run(
        "ecapa_baseline.yaml",
        tiny_corpus,
        tmp_path / "with",
        *common,
        "--scoring_backend=wccn",
    )
    plain = _run(
        "ecapa_baseline.yaml", tiny_corpus, tmp_path / "plain", *common
    )
    beside = tmp_path / "with" / "eval" / "without_backend"
    with open(beside / "report.json") as f:
        report = json.load(f)
    assert report["overall"] == plain["overall"]
    assert report["conditions"] == plain["conditions"]
    assert (beside / "scores.txt").read_text() == (
        tmp_path / "plain" / "eval" / "scores.txt"
    ).read_text()
    with_report = json.loads(
        (tmp_path / "with" / "eval" / "report.json").read_text()
    )
    assert with_report["overall"] != plain["overall"]
    # compare.py takes the plain report as a run, paired on the same trials.
    compare = load_recipe("speaker_verification", "compare")
    text = compare.compare(
        [f"plain={beside / 'report.json'}", f"wccn={tmp_path / 'with'}"]
    )
    assert "Paired on the same trials" in text
    evaluate = load_recipe("speaker_verification", "evaluate")
    again = evaluate.main(
        [
            os.path.join(HPARAMS, "ecapa_baseline.yaml"),
            f"--data_folder={tiny_corpus}",
            f"--output_folder={tmp_path / 'with'}",
            *TINY_MODEL,
            *common[1:],
        ]
    )
    assert again["overall"] == plain["overall"]
    assert not beside.exists()
    assert not (tmp_path / "with" / "eval" / "backend.npz").exists()
