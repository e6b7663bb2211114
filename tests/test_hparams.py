"""Loading a recipe's file as SpeechBrain does, with every method and
training key checked."""

import os

import pytest
from hyperpyyaml import load_hyperpyyaml

from emotion_invariant.hparams import (
    HparamsError,
    load_hparams,
    plain_hparams,
    save_hparams,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams")

RECIPE = """\
seed: 1
lr: 0.1
output_folder: !ref runs/<seed>
opt_class: !name:torch.optim.Adam
    lr: !ref <lr>
checkpointer: !new:speechbrain.utils.checkpoints.Checkpointer
    checkpoints_dir: !ref <output_folder>/save
"""


def _write(tmp_path, text=RECIPE):
    path = tmp_path / "recipe.yaml"
    path.write_text(text)
    return str(path)


def test_load_is_speechbrains_with_the_overrides(tmp_path):
    path = _write(tmp_path)
    out = tmp_path / "out"
    overrides = f"lr: 0.5\noutput_folder: {out}"
    hparams, source, overrides_yaml = load_hparams(path, overrides)
    with open(path, encoding="utf-8") as fin:
        plain = load_hyperpyyaml(fin, overrides)
    assert source == path and overrides_yaml == overrides
    assert hparams["opt_class"].keywords == plain["opt_class"].keywords
    assert hparams["opt_class"].keywords == {"lr": 0.5}
    assert hparams["checkpointer"].checkpoints_dir == out / "save"
    assert load_hparams(path, {"lr": 0.2})[0]["opt_class"].keywords == {
        "lr": 0.2
    }


def test_bad_values_are_refused_before_anything_is_built(tmp_path):
    path = _write(tmp_path)
    out = tmp_path / "out"
    for loader in (load_hparams, plain_hparams):
        with pytest.raises(HparamsError) as err:
            loader(path, {"lr": -1, "output_folder": str(out)})
        assert str(err.value) == (
            f"{path} with overrides: lr: -1 is not valid; expected a number "
            "in (0, inf)"
        )
        assert not out.exists()
    # A bad value written in the file itself names the file.
    bad = _write(tmp_path, RECIPE.replace("lr: 0.1", "lr: abc"))
    for loader in (plain_hparams, load_hparams):
        with pytest.raises(HparamsError, match=r"recipe.yaml: lr: 'abc' is"):
            loader(bad, {"output_folder": str(out)})
    out = tmp_path / "out2"
    with pytest.raises(HparamsError, match="not found"):
        load_hparams(str(tmp_path / "none.yaml"))
    for loader in (load_hparams, plain_hparams):
        with pytest.raises(HparamsError, match="'lr_typo' not found"):
            loader(path, {"lr_typo": 1, "output_folder": str(out)})
    assert not out.exists()
    with pytest.raises(HparamsError, match="command-line overrides: not"):
        load_hparams(path, "lr: [0.1")


def test_plain_values_build_nothing(tmp_path):
    path = _write(tmp_path)
    out = tmp_path / "out"
    values = plain_hparams(path, {"output_folder": str(out)})
    assert values["checkpointer"]["checkpoints_dir"] == f"{out}/save"
    assert not out.exists()  # the checkpointer was not built
    load_hparams(path, {"output_folder": str(out)})
    assert (out / "save").is_dir()


def test_saved_hyperparams_load_alone(tmp_path):
    path = _write(tmp_path)
    save_hparams(path, {"lr": 0.3, "seed": 4}, str(tmp_path))
    saved = tmp_path / "hyperparams.yaml"
    assert saved.read_text().splitlines()[1] == f"# {path}"
    with open(saved, encoding="utf-8") as fin:
        hparams = load_hyperpyyaml(fin, {"output_folder": str(tmp_path / "o")})
    assert hparams["opt_class"].keywords == {"lr": 0.3}
    assert hparams["seed"] == 4
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_default_ecapa_sizes_are_the_speaker_recipes():
    import inspect

    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    from emotion_invariant.models.embedder import ECAPA_SIZES

    path = os.path.join(HPARAMS, "speaker_verification", "ecapa_base.yaml")
    hparams = plain_hparams(path, {"data_folder": "unused"})
    default = inspect.signature(ECAPA_TDNN).parameters["se_channels"].default
    assert ECAPA_SIZES == {
        "n_mels": hparams["n_mels"],
        "channels": tuple(hparams["channels"]),
        "attention_channels": hparams["attention_channels"],
        "se_channels": default,
        "lin_neurons": hparams["lin_neurons"],
    }
