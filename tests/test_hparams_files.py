"""Every recipe file is plain hyperpyyaml: SpeechBrain's own loader, given
only the data and output folders, builds the objects its recipe reads."""

import os

import pytest
import torch
from hyperpyyaml import load_hyperpyyaml
from speechbrain.augment.augmenter import Augmenter
from speechbrain.lobes.features import Fbank
from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier
from speechbrain.nnet.losses import LogSoftmaxWrapper
from speechbrain.nnet.schedulers import LinearScheduler
from speechbrain.processing.features import InputNormalization
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter
from speechbrain.utils.train_logger import FileTrainLogger

from emotion_invariant.augment.energy_mask import EnergyGuidedMask
from emotion_invariant.hparams import check_hparams
from emotion_invariant.losses.adversarial import (
    EmbeddingMemory,
    LambdaSchedule,
    SpeakerAdversary,
)
from emotion_invariant.losses.supcon import SupConLoss

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams")

#: What every recipe builds from its file.
COMMON = {
    "compute_features": Fbank,
    "mean_var_norm": InputNormalization,
    "embedding_model": ECAPA_TDNN,
    "lr_annealing": LinearScheduler,
    "epoch_counter": EpochCounter,
    "train_logger": FileTrainLogger,
    "checkpointer": Checkpointer,
}
#: And each recipe's own objects, and the keys of its methods.
RECIPES = {
    "speaker_verification": (
        {
            "classifier": Classifier,
            "energy_mask": EnergyGuidedMask,
            "wav_augment": Augmenter,
            "compute_cost": LogSoftmaxWrapper,
            "supcon_loss": SupConLoss,
        },
        ("copypaste_prob", "erl_weight", "mask_ratio", "mask_prob"),
        ("supcon_weight", "aam_weight", "emotion_nap_dims"),
    ),
    "emotion_recognition": (
        {
            "emotion_classifier": torch.nn.Sequential,
            "adversary": SpeakerAdversary,
            "adversary_memory": EmbeddingMemory,
            "grl_schedule": LambdaSchedule,
        },
        ("adv_weight", "entropy_weight", "grl_lambda", "class_balanced"),
        ("frozen_layers", "speaker_norm", "label_fraction"),
    ),
    "pretraining": (
        {
            "supcon": SupConLoss,
            "speaker_head": SpeakerAdversary,
            "grl_schedule": LambdaSchedule,
        },
        ("positives", "multitask", "multitask_weight", "temperature"),
        ("cross_speaker_negatives", "clusters_file", "encoder_file"),
    ),
}


def recipe_files():
    """Every file a recipe is run with: the yaml files of each task."""
    found = []
    for task in sorted(os.listdir(HPARAMS)):
        if task == "suite":  # measurement plans, not a recipe's hparams
            continue
        for name in sorted(os.listdir(os.path.join(HPARAMS, task))):
            if name.endswith(".yaml"):
                found.append(f"{task}/{name}")
    return found


def _recipe(name):
    task, file = name.split("/")
    return "pretraining" if file.startswith("pretrain_") else task


def test_every_recipe_is_covered():
    files = recipe_files()
    assert len(files) >= 12
    assert {_recipe(name) for name in files} == set(RECIPES)


@pytest.mark.parametrize("name", recipe_files())
def test_plain_hyperpyyaml_builds_the_recipe_objects(name, tmp_path):
    out = str(tmp_path / "run")
    with open(os.path.join(HPARAMS, name), encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(
            fin, {"data_folder": "corpus", "output_folder": out}
        )
    objects, methods, switches = RECIPES[_recipe(name)]
    for key, kind in {**COMMON, **objects}.items():
        assert isinstance(hparams[key], kind), (key, type(hparams[key]))
    for key in methods + switches:
        assert key in hparams, key
    check_hparams(hparams, name)
    # One object each, shared by the modules and the checkpoint.
    for key, module in hparams["modules"].items():
        assert module is hparams[key], key
    recoverables = hparams["checkpointer"].recoverables
    assert recoverables["embedding_model"] is hparams["embedding_model"]
    assert recoverables["counter"] is hparams["epoch_counter"]
    assert recoverables["normalizer"] is hparams["mean_var_norm"]
    # Everything a run writes goes under the output folder given.
    assert hparams["data_folder"] == "corpus"
    assert str(hparams["checkpointer"].checkpoints_dir).startswith(out)
    assert hparams["train_logger"].save_file.startswith(out)
    encoder = hparams["embedding_model"]
    optimizer = hparams["opt_class"](encoder.parameters())
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.defaults["lr"] == hparams["lr"]
    features = hparams["compute_features"](torch.zeros(1, 1600))
    assert features.shape[-1] == hparams["n_mels"]
    assert encoder.blocks[0].conv.conv.in_channels == hparams["n_mels"]


def test_a_grid_given_replaces_the_presets_whole():
    """HyperPyYAML merges a mapping override into the file's mapping, so
    the frozen-layer preset keeps its grid apart (preset_grid): a
    select_grid on the command line is searched alone."""
    from emotion_invariant.emotion.layer_run import grid_points
    from emotion_invariant.hparams import plain_hparams

    path = os.path.join(
        HPARAMS, "emotion_recognition", "ser_ecapa_frozen_layers.yaml"
    )
    folders = {"data_folder": "corpus", "output_folder": "run"}
    preset = grid_points(plain_hparams(path, folders))
    assert len(preset) == 8
    grid = {"select_grid": {"lr": [0.001, 0.01]}}
    values = plain_hparams(path, {**folders, **grid})
    points = grid_points(values)
    assert [p["lr"] for p in points] == [0.001, 0.01]
    # The other keys at their one value, not the preset's grid.
    assert {(p["head_type"], p["layer_set"]) for p in points} == {
        (values["head_type"], values["layer_set"])
    }
