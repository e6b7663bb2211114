"""Export of trained runs to SpeechBrain's published layout, loaded by
SpeechBrain's own inference classes, offline."""

import csv
import os
import re
import shutil
import subprocess
import sys

import numpy
import pytest
import torch
from fake_corpora import TINY_ECAPA
from hyperpyyaml import load_hyperpyyaml
from recipe_scripts import load_recipe

from emotion_invariant.backend import fit
from emotion_invariant.data.manifest import read_manifest, sample_per_group
from emotion_invariant.models.export import choose_checkpoint, export, main
from emotion_invariant.runlock import acquire_run_lock
from emotion_invariant.scoring import load_embeddings
from emotion_invariant.scoring.extract import extract_embeddings

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = [
    *TINY_ECAPA,
    "--debug",
    "--debug_persistently",
]
LAYOUT = {
    "hyperparams.yaml",
    "embedding_model.ckpt",
    "classifier.ckpt",
    "mean_var_norm_emb.ckpt",
    "label_encoder.txt",
    "label_encoder.ckpt",
    "README.md",
}


def _train(task, yaml, corpus, out, *extra):
    load_recipe(task).main(
        [
            os.path.join(ROOT, "hparams", task, yaml),
            f"--data_folder={corpus}",
            f"--output_folder={out}",
            *TINY,
            *extra,
        ]
    )
    return out


@pytest.fixture(scope="module")
def sv_run(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("sv_run")
    return _train(
        "speaker_verification", "ecapa_emotion_invariant.yaml", tiny_corpus, out
    )


@pytest.fixture(scope="module")
def ser_run(tiny_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("ser_run")
    return _train(
        "emotion_recognition",
        "ser_adversarial.yaml",
        tiny_corpus,
        out,
        "--emo_hidden=16",
        "--adv_hidden=16",
        "--max_train_len=1.5",
    )


def test_speaker_model_loads_in_speechbrain(
    sv_run, tiny_corpus, tmp_path, monkeypatch, no_network
):
    """SpeakerRecognition.from_hparams loads the folder with the hub off and
    embeds the test utterances as the recipe's evaluation did."""
    from speechbrain.inference.speaker import SpeakerRecognition

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "model"
    result = export(sv_run, out)
    assert set(os.listdir(out)) == LAYOUT
    model = SpeakerRecognition.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    rows = read_manifest(str(sv_run / "manifests" / "synth_test.csv"))
    ids, emb = extract_embeddings(
        rows,
        model.encode_batch,
        batch_size=8,  # the recipe's eval_batch_size: the same padding
        device="cpu",
        data_root=str(tiny_corpus),
        progress=False,
    )
    ref_ids, ref = load_embeddings(str(sv_run / "eval" / "embeddings.npz"))
    assert list(ids) == list(ref_ids)
    torch.testing.assert_close(emb, torch.as_tensor(ref), atol=1e-5, rtol=1e-4)
    with open(out / "hyperparams.yaml") as f:
        hparams = load_hyperpyyaml(f)
    assert hparams["task"] == "speaker"
    stored = hparams["threshold"]
    assert stored == pytest.approx(result["threshold"], abs=1e-6)
    assert -1 <= stored <= 1
    card = (out / "README.md").read_text()
    for text in ("synth", "copypaste_prob: 1.0", "erl_weight: 1.0", "| all |"):
        assert text in card
    assert "Apache-2.0" in card


def test_best_and_last_checkpoints(tmp_path):
    """``best`` is the recipe's choice (lowest dev EER, highest dev UA),
    ``last`` the newest."""
    from speechbrain.utils.checkpoints import Checkpointer

    saver = Checkpointer(tmp_path / "save", {"m": torch.nn.Linear(1, 1)})
    best = saver.save_checkpoint(meta={"EER": 0.1, "UA": 0.2})
    newest = saver.save_checkpoint(meta={"EER": 0.3, "UA": 0.6})
    assert choose_checkpoint(tmp_path, "best", "speaker") == best.path
    assert choose_checkpoint(tmp_path, "best", "emotion") == newest.path
    assert choose_checkpoint(tmp_path, "last", "speaker") == newest.path


def test_emotion_model_classifies_with_project_labels(
    ser_run, tiny_corpus, tmp_path, monkeypatch, no_network
):
    """EncoderClassifier.classify_file returns this project's emotion labels,
    the predictions the recipe's evaluation wrote."""
    from speechbrain.inference.classifiers import EncoderClassifier

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "model"
    export(ser_run, out)
    assert LAYOUT | {"mean_var_norm.ckpt"} == set(os.listdir(out))
    with open(out / "hyperparams.yaml") as f:
        assert load_hyperpyyaml(f)["task"] == "emotion"
    model = EncoderClassifier.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    with open(ser_run / "eval" / "predictions.csv") as f:
        predictions = list(csv.DictReader(f))
    rows = {
        row["ID"]: row
        for row in read_manifest(str(ser_run / "manifests" / "synth_test.csv"))
    }
    for row in predictions:
        wav = rows[row["ID"]]["wav"].replace("$data_root", str(tiny_corpus))
        assert model.classify_file(wav)[3] == [row["predicted"]]


def test_errors_leave_nothing(sv_run, tmp_path, capsys):
    """A bad checkpoint or an existing folder: one error line, exit 1, and
    no folder (temporary or final) left behind."""
    assert main([str(sv_run), str(tmp_path / "m"), "--checkpoint", "x"]) == 1
    assert "error: x: not a checkpoint folder" in capsys.readouterr().err
    assert main([str(tmp_path), str(tmp_path / "m")]) == 1
    assert "no hyperparams.yaml" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    (tmp_path / "taken").mkdir()
    assert main([str(sv_run), str(tmp_path / "taken")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["taken"]


def _copy_run(run, tmp_path, data_moved=False):
    """A copy of a trained run to damage; ``data_moved``: its data folder
    is no longer where the run found it."""
    copy = tmp_path / "run"
    # not the lock file of the training, held by this test process
    skip = shutil.ignore_patterns(".run.lock")
    shutil.copytree(run, copy, symlinks=True, ignore=skip)
    if data_moved:
        path = copy / "hyperparams.yaml"
        text = re.sub(
            r"(?m)^data_folder: .*$",
            f"data_folder: {tmp_path / 'moved'}",
            path.read_text(),
        )
        path.write_text(text)
    return copy


def _random_bytes(path):
    path.write_bytes(numpy.random.default_rng(0).bytes(5000))


def _truncated(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _negative_variance(path):
    """Finite weights that embed as NaN: BatchNorm's variance below 0."""
    state = torch.load(path, weights_only=True)
    for key in state:
        if key.endswith("running_var"):
            state[key] = -torch.ones_like(state[key])
    torch.save(state, path)


@pytest.mark.parametrize(
    "run, data_moved, name, damage, message",
    [
        ("sv", False, "embedding_model.ckpt", _random_bytes, "not a valid"),
        ("sv", True, "embedding_model.ckpt", _random_bytes, "not a valid"),
        ("ser", False, "embedding_model.ckpt", _random_bytes, "not a valid"),
        ("ser", False, "emotion_classifier.ckpt", _truncated, "not a valid"),
        ("sv", True, "embedding_model.ckpt", _negative_variance, "NaN or inf"),
    ],
)
def test_damaged_checkpoint_is_named_and_nothing_published(
    request,
    tmp_path,
    capsys,
    no_network,
    run,
    data_moved,
    name,
    damage,
    message,
):
    """Every published file is loaded before the rename: a damaged one is
    named in the run, without torch's advice, and OUT never appears."""
    task = "speaker" if run == "sv" else "emotion"
    source = request.getfixturevalue(f"{run}_run")
    copy = _copy_run(source, tmp_path, data_moved)
    ckpt = choose_checkpoint(copy, "best", task)
    damage(ckpt / name)
    out = tmp_path / "model"
    assert main([str(copy), str(out)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1, err
    blamed = ckpt / name if message == "not a valid" else ckpt
    assert f"{blamed}: " in err and message in err
    assert "weights_only" not in err and "Traceback" not in err
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["run"]
    assert not (copy / ".run.lock").exists()


# A process that holds argv[1]'s run lock until its stdin closes.
HOLDER = """
import sys
from emotion_invariant.runlock import acquire_run_lock
acquire_run_lock(sys.argv[1], purpose="train")
print("locked", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("held", ["run", "parent"])
def test_a_run_still_written_is_not_exported(sv_run, tmp_path, capsys, held):
    """A live process holding the run folder (or, for a fold, the output
    folder above it) stops the export, naming the holder."""
    run = _copy_run(sv_run, tmp_path)
    if held == "parent":
        (tmp_path / "runs").mkdir()
        run = run.rename(tmp_path / "runs" / "fold_1")
        os.rename(run / "hyperparams.yaml", run.parent / "hyperparams.yaml")
    locked = run if held == "run" else run.parent
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(locked)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert main([str(run), str(tmp_path / "model")]) == 1
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)
    err = capsys.readouterr().err
    assert err.startswith(f"error: {locked} is in use by pid {proc.pid} ")
    assert not (tmp_path / "model").exists()
    assert not any(p.name.startswith(".model") for p in tmp_path.iterdir())
    assert main([str(run), str(tmp_path / "model")]) == 0


def test_read_only_run_is_exported_unless_held(
    sv_run, tmp_path, capsys, monkeypatch
):
    """A run folder this process cannot write (a colleague's results) takes
    no lock file; it is exported unless a live process holds it."""
    import emotion_invariant.models.export as export_module

    run = _copy_run(sv_run, tmp_path)

    def unwritable(folder, purpose=None):
        if os.path.realpath(folder) == os.path.realpath(run):
            raise PermissionError(13, "Permission denied", str(folder))
        return acquire_run_lock(folder, purpose)

    monkeypatch.setattr(export_module, "acquire_run_lock", unwritable)
    assert main([str(run), str(tmp_path / "model")]) == 0
    assert set(os.listdir(tmp_path / "model")) == LAYOUT
    assert ".run.lock" not in os.listdir(run)
    holder = {"pid": 1, "command": "train.py", "since": "now"}
    monkeypatch.setattr(export_module, "lock_holder", lambda folder: holder)
    assert main([str(run), str(tmp_path / "again")]) == 1
    assert "is in use by pid 1 (train.py)" in capsys.readouterr().err
    assert not (tmp_path / "again").exists()


@pytest.mark.parametrize(
    "kind, settings", [("within_speaker_nap", {"dims": 2}), ("wccn", {})]
)
def test_speaker_model_with_backend_scores_as_the_backend(
    sv_run,
    tiny_corpus,
    tmp_path,
    monkeypatch,
    capsys,
    no_network,
    kind,
    settings,
):
    """Exported with --backend, the folder loads with
    SpeakerRecognition.from_hparams, offline: its embeddings are the
    back-end's transform of the recipe's, and SpeechBrain's cosine gives
    Backend.score_pairs's scores."""
    from speechbrain.inference.speaker import SpeakerRecognition

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    ref_ids, ref = load_embeddings(str(sv_run / "eval" / "embeddings.npz"))
    rows = read_manifest(str(sv_run / "manifests" / "synth_test.csv"))
    speaker = {row["ID"]: row["spk_id"] for row in rows}
    backend = fit(kind, ref, [speaker[i] for i in ref_ids], **settings)
    backend.save(tmp_path / "backend.npz")
    out = tmp_path / "model"
    argv = [str(sv_run), str(out), "--backend", str(tmp_path / "backend.npz")]
    assert main(argv) == 0, capsys.readouterr().err
    layout = LAYOUT - {"classifier.ckpt"} | {"backend.npz"}
    assert set(os.listdir(out)) == layout
    model = SpeakerRecognition.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    ids, emb = extract_embeddings(
        rows,
        model.encode_batch,
        batch_size=8,  # the recipe's eval_batch_size: the same padding
        device="cpu",
        data_root=str(tiny_corpus),
        progress=False,
    )
    assert list(ids) == list(ref_ids)
    torch.testing.assert_close(emb, backend.transform(ref), atol=1e-5, rtol=0)
    first, second = torch.triu_indices(len(ids), len(ids), offset=1)
    scores = model.similarity(emb[first], emb[second])  # verify_batch's
    expected = backend.score_pairs(ref[first], ref[second])
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=0)
    with open(out / "hyperparams.yaml") as f:
        hparams = load_hyperpyyaml(f)
    assert -1 <= hparams["threshold"] <= 1  # the dev EER's, mapped
    assert f"`{kind}` back-end" in (out / "README.md").read_text()


def test_backend_fitted_on_an_exported_model(
    sv_run, tiny_corpus, tmp_path, monkeypatch, no_network
):
    """python -m emotion_invariant.backend fit --model on an exported
    folder: the new folder embeds as the back-end maps the exported
    model's embeddings, stores no threshold (the model's was for the
    embeddings before the back-end) and keeps the model's card."""
    from speechbrain.inference.speaker import SpeakerRecognition

    from emotion_invariant.backend import load_backend
    from emotion_invariant.backend.fitting import main as fit_main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plain = tmp_path / "model"
    export(sv_run, plain)
    manifest = str(sv_run / "manifests" / "synth_test.csv")
    out = tmp_path / "with_backend"
    argv = ["fit", "--model", str(plain), "--manifest", manifest]
    argv += ["--data-root", str(tiny_corpus), "--batch-size", "8"]
    argv += ["--kind", "within_speaker_nap", "--dims", "3"]
    assert fit_main([*argv, "--out", str(out)]) == 0
    embedded = []
    for folder in (plain, out):
        model = SpeakerRecognition.from_hparams(
            source=str(folder), savedir=str(tmp_path / f"{folder.name}_sd")
        )
        embedded.append(
            extract_embeddings(
                read_manifest(manifest),
                model.encode_batch,
                batch_size=8,
                device="cpu",
                data_root=str(tiny_corpus),
                progress=False,
            )[1]
        )
    backend = load_backend(out / "backend.npz")
    torch.testing.assert_close(
        embedded[1], backend.transform(embedded[0]), atol=1e-5, rtol=0
    )
    with open(out / "hyperparams.yaml") as f:
        assert "threshold" not in load_hyperpyyaml(f)
    card = (out / "README.md").read_text()
    assert "## The model it was fitted on: model" in card
    assert "Exported from" in card and "24 utterances of 2 speakers" in card


def test_recipe_backend_exported_gives_the_recipes_scores(
    tiny_corpus, tmp_path, monkeypatch, capsys, no_network
):
    """The back-end the recipe fitted at evaluation (``scoring_backend``),
    exported with the model and applied by SpeechBrain's own
    SpeakerRecognition, offline, gives the recipe's trial scores."""
    from speechbrain.inference.speaker import SpeakerRecognition

    from emotion_invariant.scoring import read_trials

    run = _train(
        "speaker_verification",
        "ecapa_baseline.yaml",
        tiny_corpus,
        tmp_path / "run",
        "--scoring_backend=within_speaker_nap",
        "--backend_dims=2",
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    out = tmp_path / "model"
    argv = [str(run), str(out), "--backend", str(run / "eval" / "backend.npz")]
    assert main(argv) == 0, capsys.readouterr().err
    model = SpeakerRecognition.from_hparams(
        source=str(out), savedir=str(tmp_path / "savedir")
    )
    rows = read_manifest(str(run / "manifests" / "synth_test.csv"))
    ids, emb = extract_embeddings(
        rows,
        model.encode_batch,
        batch_size=8,  # the recipe's eval_batch_size: the same padding
        device="cpu",
        data_root=str(tiny_corpus),
        progress=False,
    )
    index = {uid: i for i, uid in enumerate(ids)}
    trials = read_trials(str(run / "manifests" / "synth_trials.txt"))
    names = torch.tensor([index[n] for n in trials.names])
    enrol = emb[names[torch.as_tensor(trials.enrol)]]
    test = emb[names[torch.as_tensor(trials.test)]]
    scores = model.similarity(enrol, test)
    recipe = [
        float(line.split()[-1])
        for line in (run / "eval" / "scores.txt").read_text().splitlines()
    ]
    torch.testing.assert_close(scores, torch.tensor(recipe), atol=1e-5, rtol=0)


def test_emotion_labels_predicted_for_a_backend(
    ser_run, tiny_corpus, tmp_path, monkeypatch, capsys, no_network
):
    """``backend label`` writes the exported emotion model's predictions in
    ``emo`` (the corpus's own in ``emo_true``), the labels its
    ``classify_file`` gives; the speaker recipe's ``backend_emotion_model``
    fits the back-end on those predictions, not on the manifest's labels;
    a speaker model given as the emotion model is refused."""
    from speechbrain.inference.classifiers import EncoderClassifier

    import emotion_invariant.verification.evaluation as evaluation
    from emotion_invariant.backend.fitting import main as fit_main

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = tmp_path / "ser_model"
    export(ser_run, model)
    classifier = EncoderClassifier.from_hparams(
        source=str(model), savedir=str(tmp_path / "savedir")
    )
    manifest = str(ser_run / "manifests" / "synth_test.csv")
    rows = read_manifest(manifest)

    def predicted(row):
        wav = row["wav"].replace("$data_root", str(tiny_corpus))
        return classifier.classify_file(wav)[3][0]

    out = tmp_path / "labelled.csv"
    argv = ["label", "--emotion-model", str(model), "--manifest", manifest]
    argv += ["--data-root", str(tiny_corpus), "--out", str(out)]
    assert fit_main(argv) == 0
    labelled = read_manifest(str(out), allow_empty_emo=True)
    assert [row["emo"] for row in labelled] == [predicted(r) for r in rows]
    assert [row["emo_true"] for row in labelled] == [r["emo"] for r in rows]

    seen = {}
    fit_backend = evaluation.fit

    def spy(kind, embeddings, speakers, nuisances=None, **settings):
        seen["nuisances"] = nuisances
        return fit_backend(kind, embeddings, speakers, nuisances, **settings)

    monkeypatch.setattr(evaluation, "fit", spy)
    run = tmp_path / "sv"
    _train(
        "speaker_verification",
        "ecapa_baseline.yaml",
        tiny_corpus,
        run,
        "--scoring_backend=emotion_nap",
        "--backend_dims=1",
        f"--backend_emotion_model={model}",
    )
    chosen = sample_per_group(
        read_manifest(str(run / "manifests" / "synth_train.csv")),
        ("spk_id", "emo"),
        4,
        1,
    )
    assert sorted(seen["nuisances"]) == sorted(predicted(r) for r in chosen)
    assert sorted(seen["nuisances"]) != sorted(r["emo"] for r in chosen)

    speaker_model = tmp_path / "sv_model"
    export(run, speaker_model)
    argv[2] = str(speaker_model)
    argv[-1] = str(tmp_path / "refused.csv")
    assert fit_main(argv) == 1
    assert "expected an emotion model" in capsys.readouterr().err
    assert not (tmp_path / "refused.csv").exists()
