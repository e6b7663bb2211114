"""Variant hyperparameter files: overrides on one base file."""

import os
import re

import pytest

from emotion_invariant.hparams import (
    HparamsError,
    compose_hparams,
    included_files,
    load_hparams,
    resolve_hparams,
)

HPARAMS = os.path.join(os.path.dirname(os.path.dirname(__file__)), "hparams")


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return str(path)


def test_variant_chain_and_command_line_win(tmp_path):
    _write(tmp_path, "base.yaml", "a: 1\nb: 2\nc: !ref <a>\n")
    _write(tmp_path, "mid.yaml", "base: base.yaml\na: 10\nb: 20\n")
    top = _write(tmp_path, "top.yaml", "base: mid.yaml\nb: 30\n")
    hparams, base, overrides = load_hparams(top, "a: 7")
    assert base.endswith("base.yaml")
    assert (hparams["a"], hparams["b"], hparams["c"]) == (7, 30, 7)
    assert "b: 30" in overrides


def test_full_file_is_its_own_base(tmp_path):
    path = _write(tmp_path, "full.yaml", "a: 1\nb: !ref <a>\n")
    assert resolve_hparams(path, {"a": 2}) == (path, {"a": 2})


def test_include_stands_for_the_file_and_keys_stay_overridable(tmp_path):
    _write(tmp_path, "part.yaml", "n: 2\nobj: !new:collections.Counter\n")
    _write(tmp_path, "full.yaml", "a: 1\ninclude: part.yaml\nb: !ref <n>\n")
    variant = _write(tmp_path, "v.yaml", "base: full.yaml\nn: 5\n")
    hparams = load_hparams(variant, "a: 3")[0]
    assert (hparams["a"], hparams["n"], hparams["b"]) == (3, 5, 5)
    assert "include" not in hparams and hparams["obj"] == {}
    twice = _write(tmp_path, "twice.yaml", "n: 1\ninclude: part.yaml\n")
    with pytest.raises(HparamsError, match="duplicate key"):
        load_hparams(twice)
    _write(tmp_path, "loop.yaml", "include: loop.yaml\n")
    with pytest.raises(HparamsError, match="cycle"):
        compose_hparams(str(tmp_path / "loop.yaml"))
    # One line may name several files, each standing for its text.
    _write(tmp_path, "other.yaml", "m: !ref <n>\n")
    both = _write(tmp_path, "both.yaml", "include: [part.yaml, other.yaml]\n")
    assert load_hparams(both, "n: 4")[0]["m"] == 4
    _write(tmp_path, "lost.yaml", "include: absent.yaml\n")
    with pytest.raises(HparamsError, match="absent.yaml does not exist"):
        compose_hparams(str(tmp_path / "lost.yaml"))


#: The keys of the emotion encoder and its features.
ENCODER_KEYS = (
    "sample_rate",
    "n_mels",
    "norm_type",
    "channels",
    "attention_channels",
    "lin_neurons",
    "compute_features",
    "mean_var_norm",
    "embedding_model",
)


def test_emotion_encoder_is_written_once():
    """The pretraining and the emotion recognition base take the encoder
    and its features from one file, so neither sizes nor norm_type drift."""
    folder = os.path.join(HPARAMS, "emotion_recognition")
    loaded = {}
    for name in ("ser_base.yaml", "pretrain_cluster_contrastive.yaml"):
        path = os.path.join(folder, name)
        with open(path, encoding="utf-8") as f:
            own = set(re.findall(r"^(\w+):", f.read(), flags=re.M))
        assert not own & set(ENCODER_KEYS), name
        loaded[name] = load_hparams(path, {"data_folder": "unused"})[0]
    base, pretrain = loaded.values()
    for key in ENCODER_KEYS[:6]:
        assert base[key] == pretrain[key], key


def test_errors(tmp_path):
    with pytest.raises(HparamsError, match="not found"):
        resolve_hparams(str(tmp_path / "none.yaml"))
    missing = _write(tmp_path, "v.yaml", "base: absent.yaml\n")
    with pytest.raises(HparamsError, match="absent.yaml does not exist"):
        resolve_hparams(missing)
    _write(tmp_path, "x.yaml", "base: y.yaml\n")
    cyc = _write(tmp_path, "y.yaml", "base: x.yaml\n")
    with pytest.raises(HparamsError, match="cycle"):
        resolve_hparams(cyc)
    base = _write(tmp_path, "b.yaml", "a: 1\n")
    with pytest.raises(HparamsError, match="command-line overrides"):
        resolve_hparams(base, "a: [unclosed")


#: Files that stand on their own besides each task's base: another stage.
STANDALONE = {"pretrain_cluster_contrastive.yaml"}


def test_repository_variants_are_overrides_of_one_base():
    root = HPARAMS
    for task in os.listdir(root):
        if task == "suite":  # measurement plans, not a recipe's hparams
            continue
        names = sorted(os.listdir(os.path.join(root, task)))
        bases = [n for n in names if n.endswith("_base.yaml")]
        assert len(bases) == 1, (task, names)
        parts = set()  # files that others include
        for name in names:
            with open(os.path.join(root, task, name), encoding="utf-8") as f:
                for value in re.findall(r"^include: *(.+)$", f.read(), re.M):
                    parts.update(included_files(value))
        for name in names:
            path = os.path.join(root, task, name)
            if name in parts:
                continue
            base, overrides = resolve_hparams(path)
            if name in bases or name in STANDALONE:
                assert base == path, path
                continue
            # A variant names the task's base and overrides something: a
            # full copy of the base is a second source of every fact.
            assert os.path.basename(base) == bases[0], path
            assert overrides, path


def test_default_ecapa_sizes_are_the_speaker_recipes():
    import inspect

    from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN

    from emotion_invariant.models.embedder import ECAPA_SIZES

    root = os.path.dirname(os.path.dirname(__file__))
    path = os.path.join(
        root, "hparams", "speaker_verification", "ecapa_base.yaml"
    )
    hparams = load_hparams(path, {"data_folder": "unused"})[0]
    default = inspect.signature(ECAPA_TDNN).parameters["se_channels"].default
    assert ECAPA_SIZES == {
        "n_mels": hparams["n_mels"],
        "channels": tuple(hparams["channels"]),
        "attention_channels": hparams["attention_channels"],
        "se_channels": default,
        "lin_neurons": hparams["lin_neurons"],
    }
