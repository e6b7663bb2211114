"""Variant hyperparameter files: overrides on one base file."""

import pytest

from emotion_invariant.hparams import (
    HparamsError,
    load_hparams,
    resolve_hparams,
)


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
    import os

    root = os.path.join(os.path.dirname(os.path.dirname(__file__)), "hparams")
    for task in os.listdir(root):
        if task == "suite":  # measurement plans, not a recipe's hparams
            continue
        names = sorted(os.listdir(os.path.join(root, task)))
        bases = [n for n in names if n.endswith("_base.yaml")]
        assert len(bases) == 1, (task, names)
        for name in names:
            path = os.path.join(root, task, name)
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
    import os

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
