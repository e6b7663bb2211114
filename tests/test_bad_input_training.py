"""Bad input to the training and evaluation recipes: each fault is refused
up front with one clear message (or, where asked, skipped with a warning),
never a late traceback or a silently wrong run."""

import contextlib
import csv
import json
import logging
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
from recipe_scripts import load_recipe, recipe_path
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN
from test_recipe_emotion_recognition import TINY_MODEL as SER_TINY
from test_recipe_speaker_verification import TINY_MODEL as SV_TINY

from emotion_invariant.corpora.prepare import prepare
from emotion_invariant.data.manifest import ManifestError, read_manifest
from emotion_invariant.hparams import HparamsError, load_hparams
from emotion_invariant.models.pretrained import (
    PretrainedError,
    load_pretrained_ecapa,
)
from emotion_invariant.runlock import RunFolderLocked

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SV_TRAIN = recipe_path("speaker_verification")
SV_EVAL = recipe_path("speaker_verification", "evaluate")
SER_TRAIN = recipe_path("emotion_recognition")
SV_YAML = os.path.join(ROOT, "hparams", "speaker_verification")
SER_YAML = os.path.join(ROOT, "hparams", "emotion_recognition")


def _argv(yaml, tiny, corpus, out, extra):
    """Recipe arguments; an override in ``extra`` replaces the tiny one."""
    keys = {arg.split("=")[0] for arg in extra}
    return [
        yaml,
        f"--data_folder={corpus}",
        f"--output_folder={out}",
        *(arg for arg in tiny if arg.split("=")[0] not in keys),
        *extra,
    ]


def _sv_argv(corpus, out, *extra, yaml="ecapa_baseline.yaml"):
    return _argv(os.path.join(SV_YAML, yaml), SV_TINY, corpus, out, extra)


def _ser_argv(corpus, out, *extra, yaml="ser_baseline.yaml"):
    return _argv(os.path.join(SER_YAML, yaml), SER_TINY, corpus, out, extra)


def _cli(script, argv):
    """Run a recipe as a user does: exit status and stderr."""
    done = subprocess.run(
        [sys.executable, script, *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT},  # this checkout's package
    )
    return done.returncode, done.stderr


def _error_line(stderr):
    """The one ``error:`` line, with no traceback before it."""
    assert "Traceback" not in stderr, stderr[-2000:]
    lines = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, stderr[-2000:]
    return lines[0]


@contextlib.contextmanager
def _warnings(name):
    """The text of the warnings logger ``name`` emits (SpeechBrain's
    logging setup leaves pytest's caplog without them)."""
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    text = []
    try:
        yield text
    finally:
        logger.removeHandler(handler)
        text.extend(record.getMessage() for record in records)


@pytest.fixture
def corpus(tiny_corpus, tmp_path):
    """A copy of the tiny corpus that a test may damage."""
    copy = tmp_path / "corpus"
    shutil.copytree(tiny_corpus, copy)
    return copy


def _train_row(corpus):
    """The first training utterance of the corpus's split: (ID, wav path)."""
    folder = corpus.parent / "prepared"
    prepare("synth", str(corpus), str(folder))
    row = read_manifest(str(folder / "synth_train.csv"))[0]
    return row["ID"], corpus / row["wav"].replace("$data_root/", "")


# -- zero training steps --


def test_sv_train_set_smaller_than_one_batch(tiny_corpus, tmp_path):
    """24 training utterances, batch_size 32 and drop_last: no step."""
    rc, err = _cli(SV_TRAIN, _sv_argv(tiny_corpus, tmp_path, "--batch_size=32"))
    assert rc == 1
    line = _error_line(err)
    assert "synth_train.csv: 24 training utterance(s)" in line
    assert "batch_size 32 with drop_last" in line
    assert "--batch_size=24" in line
    assert not (tmp_path / "eval").exists()


def test_ser_train_set_smaller_than_one_batch(tiny_corpus, tmp_path):
    recipe = load_recipe("emotion_recognition")
    argv = _ser_argv(tiny_corpus, tmp_path, "--batch_size=32")
    with pytest.raises(ManifestError, match="make no batch of batch_size 32"):
        recipe.main(argv)
    assert not (tmp_path / "eval").exists()


def test_ser_debug_runs_on_the_smallest_corpus(tiny_corpus, tmp_path):
    """--debug with the default batch of 32 on 24 training utterances."""
    recipe = load_recipe("emotion_recognition")
    argv = _ser_argv(tiny_corpus, tmp_path, "--debug", "--batch_size=32")
    summary = recipe.main(argv)
    assert summary["runs"] and (tmp_path / "eval").is_dir()


# -- hyperparameters --


@pytest.mark.parametrize(
    "yaml, key, value, allowed",
    [
        ("speaker_verification/ecapa_emotion_invariant.yaml", "erl_weight",
         -1, "[0, inf)"),
        ("speaker_verification/ecapa_base.yaml", "copypaste_prob", 1.5,
         "[0, 1]"),
        ("speaker_verification/ecapa_base.yaml", "copypaste_prob", "abc",
         "[0, 1]"),
        ("speaker_verification/ecapa_base.yaml", "freeze_blocks", 7, "[0, 6]"),
        ("speaker_verification/ecapa_supcon_aam.yaml", "supcon_temperature",
         0, "(0, inf)"),
        ("speaker_verification/ecapa_base.yaml", "mask_ratio", 2, "[0, 1]"),
        ("emotion_recognition/ser_adversarial.yaml", "adv_weight", -1,
         "[0, inf)"),
        ("emotion_recognition/ser_adversarial.yaml", "entropy_weight", -0.5,
         "[0, inf)"),
        ("emotion_recognition/ser_base.yaml", "batch_size", 2.5, "[1, inf)"),
        ("emotion_recognition/ser_base.yaml", "lr", 0, "(0, inf)"),
        ("emotion_recognition/pretrain_cluster_contrastive.yaml",
         "number_of_epochs", -1, "[0, inf)"),
    ],
)  # fmt: skip
def test_bad_method_key(tmp_path, yaml, key, value, allowed):
    overrides = {"data_folder": str(tmp_path), key: value}
    with pytest.raises(HparamsError) as err:
        load_hparams(os.path.join(ROOT, "hparams", yaml), overrides)
    assert f"{key}: {value!r} is not valid" in str(err.value)
    assert allowed in str(err.value)


def test_non_numeric_override_fails_before_anything_runs(tmp_path):
    out = tmp_path / "run"
    rc, err = _cli(SV_TRAIN, _sv_argv(tmp_path, out, "--copypaste_prob=abc"))
    assert rc == 1
    assert "copypaste_prob: 'abc' is not valid" in _error_line(err)
    assert not out.exists()


def test_value_with_equals_sign_is_refused_not_mangled(tmp_path):
    """SpeechBrain's parser would turn 'lr=2' into 'lr 2' and write the run
    into another folder; the recipe refuses it instead."""
    out = tmp_path / "runs" / "lr=2"
    for argv in (
        _sv_argv(tmp_path, out),
        [a for a in _sv_argv(tmp_path, tmp_path) if "output_folder" not in a]
        + ["--output_folder", str(out)],
    ):
        rc, err = _cli(SV_TRAIN, argv)
        assert rc == 1
        assert _error_line(err).startswith("error: --output_folder: ")
        assert "holds '='" in _error_line(err)
    assert not (tmp_path / "runs").exists()


# -- audio --


def _corrupt(path):
    path.write_bytes(np.random.default_rng(0).bytes(3000))


def _empty(path):
    path.write_bytes(b"")


def _missing(path):
    path.unlink()


def _ten_ms(path):
    soundfile.write(path, np.full(160, 0.1, np.float32), 16000)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_corrupt, "unreadable audio file"),
        (_empty, "empty file (0 bytes)"),
        (_missing, "audio file not found"),
        (_ten_ms, "10 ms of audio"),
    ],
)
def test_bad_wav_fails_before_training(corpus, tmp_path, damage, message):
    uid, wav = _train_row(corpus)
    damage(wav)
    recipe = load_recipe("speaker_verification")
    with pytest.raises(ManifestError) as err:
        recipe.build(_sv_argv(corpus, tmp_path / "run"))
    text = str(err.value)
    assert "synth_train.csv: 1 of 24 row(s) have unusable audio" in text
    assert f"line 2 (ID {uid})" in text and str(wav) in text
    assert message in text and "--skip_bad=True" in text


def test_bad_wav_fails_the_emotion_recipe(corpus, tmp_path):
    uid, wav = _train_row(corpus)
    _missing(wav)
    recipe = load_recipe("emotion_recognition")
    with pytest.raises(ManifestError, match=f"ID {uid}.*audio file not found"):
        recipe.build(_ser_argv(corpus, tmp_path / "run"))


def test_silent_wav_is_counted(corpus, tmp_path):
    uid, wav = _train_row(corpus)
    soundfile.write(wav, np.zeros(16000, np.float32), 16000)
    recipe = load_recipe("speaker_verification")
    with _warnings("emotion_invariant.corpora.audio_check") as text:
        recipe.build(_sv_argv(corpus, tmp_path / "run"))
    assert "1 of 24 utterance(s) are silent" in text[0]
    assert f"ID {uid}" in text[0]


@pytest.mark.parametrize("recipe", ["sv", "ser"])
def test_audio_cache_is_kept_between_runs(recipe, tiny_corpus, tmp_path):
    """``--audio_cache``: the first run stores every file it checked, a
    second run on the same corpus reads none of them again."""
    cache = tmp_path / "cache"
    task, argv = (
        ("speaker_verification", _sv_argv)
        if recipe == "sv"
        else ("emotion_recognition", _ser_argv)
    )
    module = load_recipe(task)
    module.build(argv(tiny_corpus, tmp_path / "one", f"--audio_cache={cache}"))
    (stored,) = cache.iterdir()
    files = json.loads(stored.read_text())["files"]
    assert len(files) == len(list(tiny_corpus.rglob("*.wav")))
    audio_check = sys.modules["emotion_invariant.corpora.audio_check"]
    read = audio_check.soundfile.read
    try:
        audio_check.soundfile.read = None  # any read now fails
        module.build(
            argv(tiny_corpus, tmp_path / "two", f"--audio_cache={cache}")
        )
    finally:
        audio_check.soundfile.read = read


def test_skip_bad_drops_bad_rows_and_their_trials(corpus, tmp_path):
    folder = corpus.parent / "prepared"
    prepare("synth", str(corpus), str(folder))
    test_row = read_manifest(str(folder / "synth_test.csv"))[0]
    _missing(corpus / test_row["wav"].replace("$data_root/", ""))
    out = tmp_path / "run"
    argv = _sv_argv(corpus, out, "--debug", "--skip_bad=True")
    with (
        _warnings("emotion_invariant.corpora.audio_check") as dropped,
        _warnings("emotion_invariant.verification.evaluation") as unscored,
    ):
        report = load_recipe("speaker_verification").main(argv)
    assert "dropped (skip_bad)" in dropped[0]
    assert "scored without them" in unscored[0]
    kept = read_manifest(str(out / "manifests" / "synth_test_checked.csv"))
    assert test_row["ID"] not in {row["ID"] for row in kept}
    with open(out / "eval" / "scores.txt") as f:
        assert test_row["ID"] not in f.read()
    assert report["overall"]["eer"] >= 0


# -- speaker recipe errors, one line --


def test_sv_evaluate_error_is_one_line(tiny_corpus, tmp_path):
    rc, err = _cli(SV_EVAL, _sv_argv(tiny_corpus, tmp_path))
    assert rc == 1
    assert "no checkpoint and no pretrained_path" in _error_line(err)


# -- pretrained checkpoints --


def _tiny_ecapa(channels=16):
    c = channels
    return ECAPA_TDNN(
        24, channels=[c, c, c, c, 3 * c], attention_channels=8, lin_neurons=16
    )


def test_random_bytes_checkpoint_gives_no_weights_only_advice(tmp_path):
    (tmp_path / "embedding_model.ckpt").write_bytes(
        np.random.default_rng(0).bytes(2000)
    )
    with pytest.raises(PretrainedError) as err:
        load_pretrained_ecapa(tmp_path, _tiny_ecapa())
    text = str(err.value)
    assert "embedding_model.ckpt: not a valid checkpoint" in text
    assert "weights_only" not in text and err.value.__cause__ is None


def test_wrong_shapes_show_the_first_few_and_a_count(tmp_path):
    torch.save(_tiny_ecapa(32).state_dict(), tmp_path / "embedding_model.ckpt")
    with pytest.raises(PretrainedError) as err:
        load_pretrained_ecapa(tmp_path, _tiny_ecapa(16))
    text = str(err.value)
    assert text.count(" vs model ") == 3
    assert "more; " in text and "tensors differ" in text
    assert len(text) < 600


def test_pretrained_load_says_what_was_loaded(tmp_path, caplog):
    torch.save(_tiny_ecapa().state_dict(), tmp_path / "embedding_model.ckpt")
    (tmp_path / "label_encoder.txt").write_text(
        "'id1' => 0\n'id2' => 1\n'id3' => 2\n================\n"
        "'starting_index' => 0\n"
    )
    logger = "emotion_invariant.models.pretrained"
    with caplog.at_level(logging.INFO, logger=logger):
        load_pretrained_ecapa(tmp_path, _tiny_ecapa())
    assert f"loaded embedding_model.ckpt from {tmp_path}" in caplog.text
    assert "trained on 3 speakers" in caplog.text


# -- CopyPaste without partners --


def _one_emotion(tiny_corpus, tmp_path, speakers):
    """The tiny corpus's training manifest, ``speakers`` left neutral only."""
    folder = tmp_path / "prepared"
    prepare("synth", str(tiny_corpus), str(folder))
    path = folder / "synth_train.csv"
    rows = read_manifest(str(path))
    chosen = speakers(sorted({row["spk_id"] for row in rows}))
    rows = [r for r in rows if r["spk_id"] not in chosen or r["emo"] == "neu"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder, rows


def test_single_emotion_speakers_warn_with_the_share(tiny_corpus, tmp_path):
    folder, rows = _one_emotion(tiny_corpus, tmp_path, lambda s: s[:1])
    argv = _sv_argv(
        tiny_corpus,
        tmp_path / "run",
        "--skip_prep=True",
        f"--manifest_folder={folder}",
        yaml="ecapa_emotion_invariant.yaml",
    )
    with _warnings("emotion_invariant.data.parallel") as text:
        load_recipe("speaker_verification").build(argv)
    share = 100 * 3 / len(rows)  # 3 neutral utterances of one speaker
    assert (
        f"{share:.1f}% of the views (3 of {len(rows)} utterances)" in (text[0])
    )


def test_no_copypaste_view_possible_is_an_error(tiny_corpus, tmp_path):
    folder, _ = _one_emotion(tiny_corpus, tmp_path, lambda s: s)
    argv = _sv_argv(
        tiny_corpus,
        tmp_path / "run",
        "--skip_prep=True",
        f"--manifest_folder={folder}",
        yaml="ecapa_emotion_invariant.yaml",
    )
    with pytest.raises(ManifestError, match="no emotion CopyPaste view"):
        load_recipe("speaker_verification").build(argv)


# -- run folders --

PRETRAIN = recipe_path("emotion_recognition", "pretrain")
SER_EVAL = recipe_path("emotion_recognition", "evaluate")
PRETRAIN_YAML = os.path.join(SER_YAML, "pretrain_cluster_contrastive.yaml")

# A process that holds argv[1]'s run lock until its stdin closes.
HOLDER = """
import sys
from emotion_invariant.runlock import acquire_run_lock
acquire_run_lock(sys.argv[1], purpose="train")
print("locked", flush=True)
sys.stdin.read()
"""


@contextlib.contextmanager
def _held(folder):
    """Another live process holding ``folder``'s lock: its pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), "--other-run"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        yield proc.pid
    finally:
        proc.stdin.close()
        proc.wait()


def _listing(folder):
    """Every path under ``folder`` with its size and modification time."""
    return {
        str(p): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.rglob("*")
    }


def _recipe_argv(script, corpus, out):
    """A short run of ``script`` (were it not refused)."""
    if script in (SV_TRAIN, SV_EVAL):
        return _sv_argv(corpus, out, "--debug")
    if script == PRETRAIN:
        return [
            PRETRAIN_YAML,
            f"--data_folder={corpus}",
            f"--output_folder={out}",
            "--debug",
        ]
    return _ser_argv(corpus, out, "--debug")


@pytest.mark.parametrize(
    "task, script",
    [
        ("speaker_verification", "train"),
        ("speaker_verification", "evaluate"),
        ("emotion_recognition", "train"),
        ("emotion_recognition", "evaluate"),
        ("emotion_recognition", "pretrain"),
    ],
    ids=["sv-train", "sv-evaluate", "ser-train", "ser-evaluate", "pretrain"],
)
def test_recipe_refuses_a_folder_another_run_holds(
    tiny_corpus, tmp_path, task, script
):
    """A second run into a folder in use stops before writing anything."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "train_log.txt").write_text("epoch: 1\n")
    with _held(out) as pid:
        before = _listing(out)
        recipe = load_recipe(task, script)
        argv = _recipe_argv(recipe_path(task, script), tiny_corpus, out)
        with pytest.raises(RunFolderLocked) as info:
            recipe.main(argv)
        assert _listing(out) == before
    assert f"{out} is in use by pid {pid} (" in str(info.value)
    assert "--other-run" in str(info.value)


def test_second_run_into_a_folder_in_use_is_one_error_line(
    tiny_corpus, tmp_path
):
    out = tmp_path / "run"
    with _held(out) as pid:
        before = _listing(out)
        rc, err = _cli(SV_TRAIN, _sv_argv(tiny_corpus, out))
        assert _listing(out) == before
    assert rc == 1
    line = _error_line(err)
    assert line.startswith(f"error: {out} is in use by pid {pid} (")
    assert "wait for it to end or stop it" in line


def test_output_folder_that_is_a_file(tiny_corpus, tmp_path):
    out = tmp_path / "results.txt"
    out.write_text("a file\n")
    rc, err = _cli(SV_TRAIN, _sv_argv(tiny_corpus, out))
    assert rc == 1
    line = _error_line(err)
    assert line == f"error: output_folder {out}: a file, not a folder"
    assert out.read_text() == "a file\n"


def test_output_folder_under_a_file(tiny_corpus, tmp_path):
    (tmp_path / "results.txt").write_text("a file\n")
    out = tmp_path / "results.txt" / "run"
    recipe = load_recipe("emotion_recognition")
    with pytest.raises(OSError) as info:
        recipe.main(_ser_argv(tiny_corpus, out))
    message = str(info.value)
    assert message.startswith(f"output_folder {out}: cannot create it")
    assert "yaml" not in message


def test_unwritable_output_folder_is_blamed_not_the_yaml(
    tiny_corpus, tmp_path, monkeypatch
):
    """Permission denied on the output folder (simulated: tests may run
    as root, whom no mode stops) names the folder, not the yaml."""
    locked = tmp_path / "readonly"
    out = locked / "run"
    makedirs = os.makedirs

    def refuse(name, *args, **kwargs):
        if str(name).startswith(str(locked)):
            raise PermissionError(13, "Permission denied", str(name))
        return makedirs(name, *args, **kwargs)

    monkeypatch.setattr(os, "makedirs", refuse)
    recipe = load_recipe("speaker_verification")
    with pytest.raises(OSError) as info:
        recipe.main(_sv_argv(tiny_corpus, out))
    message = str(info.value)
    assert message == (
        f"output_folder {out}: cannot create it (Permission denied)"
    )
    assert not locked.exists()


@pytest.mark.parametrize(
    "device, message",
    [
        ("gpu0", "--device gpu0: not a device; use cpu, cuda or cuda:N"),
        ("cuda:x", "--device cuda:x: not a device; use cpu, cuda or cuda:N"),
        pytest.param(
            "cuda",
            "--device cuda: no CUDA GPU is available here; use --device cpu",
            marks=pytest.mark.skipif(
                torch.cuda.is_available(), reason="a GPU is available"
            ),
        ),
    ],
)
def test_unusable_device_fails_before_anything_is_written(
    tiny_corpus, tmp_path, device, message
):
    out = tmp_path / "run"
    recipe = load_recipe("speaker_verification")
    with pytest.raises(ValueError) as info:
        recipe.main(_sv_argv(tiny_corpus, out, f"--device={device}"))
    assert str(info.value) == message
    assert not out.exists()


def test_unusable_device_is_one_error_line(tiny_corpus, tmp_path):
    out = tmp_path / "run"
    rc, err = _cli(SER_TRAIN, _ser_argv(tiny_corpus, out, "--device=gpu0"))
    assert rc == 1
    assert _error_line(err) == (
        "error: --device gpu0: not a device; use cpu, cuda or cuda:N"
    )
    assert not out.exists()


def test_device_index_beyond_the_machines_gpus(monkeypatch):
    from emotion_invariant.experiment import check_device

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    check_device("cuda")
    check_device("cuda:1")
    with pytest.raises(ValueError) as info:
        check_device("cuda:2")
    assert str(info.value) == (
        "--device cuda:2: this machine has 2 CUDA GPU(s), cuda:0 to cuda:1"
    )
