"""The recipe files are rendered from one source per fact, and agree with
their sources byte for byte and value for value."""

import os
import re
import subprocess
import sys

import pytest
import ruamel.yaml
from hyperpyyaml import resolve_references

from emotion_invariant.hparams import HparamsError
from emotion_invariant.hparams.render import (
    GENERATED,
    compose_hparams,
    included_files,
    out_of_date,
    render,
    render_all,
    render_file,
    resolve_hparams,
    variant_changes,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPARAMS = os.path.join(ROOT, "hparams")
TASKS = ("speaker_verification", "emotion_recognition")


def _write(folder, name, text):
    path = folder / name
    path.write_text(text)
    return str(path)


def _values(text, overrides=None):
    """Every key of a hyperpyyaml text, references resolved."""
    return ruamel.yaml.YAML(typ="safe", pure=True).load(
        _untagged(resolve_references(text, overrides).getvalue())
    )


def _untagged(text):
    """The text with each tag as a plain key, so a safe loader reads it."""
    return re.sub(r"!(new|name|apply|PLACEHOLDER)\S*", "", text)


# -- the sources --


def test_variant_chain_and_overrides_win(tmp_path):
    _write(tmp_path, "base.yaml", "a: 1\nb: 2\nc: !ref <a>\n")
    _write(tmp_path, "mid.yaml", "base: base.yaml\na: 10\nb: 20\n")
    top = _write(tmp_path, "top.yaml", "base: mid.yaml\nb: 30\n")
    full, changes = resolve_hparams(top, "a: 7")
    assert full == str(tmp_path / "base.yaml")
    assert changes == {"a": 7, "b": 30}
    full_file = str(tmp_path / "base.yaml")
    assert resolve_hparams(full_file, {"a": 2}) == (full_file, {"a": 2})


def test_several_bases_take_each_ones_changes(tmp_path):
    _write(tmp_path, "base.yaml", "name: base\nm: 0\nn: 0\nk: 0\n")
    _write(tmp_path, "m.yaml", "base: base.yaml\nname: m\nm: 1\n")
    _write(tmp_path, "mn.yaml", "base: m.yaml\nname: mn\nn: 1\n")
    _write(tmp_path, "k.yaml", "base: base.yaml\nname: k\nk: 1\n")
    both = _write(tmp_path, "both.yaml", "base: [k.yaml, mn.yaml]\nname: x\n")
    _, changes = variant_changes(both)
    values = {key: value for key, (value, _) in changes.items()}
    assert values == {"name": "x", "k": 1, "m": 1, "n": 1}
    assert os.path.basename(changes["m"][1]) == "m.yaml"
    # A key two bases set differently is the variant's to decide.
    clash = _write(tmp_path, "clash.yaml", "base: [k.yaml, mn.yaml]\n")
    with pytest.raises(HparamsError, match="its bases set name to 'k' and"):
        variant_changes(clash)
    _write(tmp_path, "other.yaml", "name: other\n")
    _write(tmp_path, "o.yaml", "base: other.yaml\nname: o\n")
    mixed = _write(tmp_path, "mixed.yaml", "base: [k.yaml, o.yaml]\nname: z\n")
    with pytest.raises(HparamsError, match="stand on different files"):
        variant_changes(mixed)


def test_include_stands_for_the_files(tmp_path):
    _write(tmp_path, "part.yaml", "n: 2\nobj: !new:collections.Counter\n")
    _write(tmp_path, "other.yaml", "m: !ref <n>\n")
    full = _write(
        tmp_path, "full.yaml", "a: 1\ninclude: [part.yaml, other.yaml]\n"
    )
    assert compose_hparams(full) == (
        "a: 1\nn: 2\nobj: !new:collections.Counter\n\nm: !ref <n>\n"
    )
    assert _values(compose_hparams(full), {"n": 4})["m"] == 4
    assert included_files("[a.yaml, b.yaml]") == ["a.yaml", "b.yaml"]
    _write(tmp_path, "loop.yaml", "include: loop.yaml\n")
    with pytest.raises(HparamsError, match="cycle"):
        compose_hparams(str(tmp_path / "loop.yaml"))
    _write(tmp_path, "lost.yaml", "include: absent.yaml\n")
    with pytest.raises(HparamsError, match="absent.yaml does not exist"):
        compose_hparams(str(tmp_path / "lost.yaml"))


def test_source_errors(tmp_path):
    with pytest.raises(HparamsError, match="not found"):
        variant_changes(str(tmp_path / "none.yaml"))
    missing = _write(tmp_path, "v.yaml", "base: absent.yaml\n")
    with pytest.raises(HparamsError, match="absent.yaml does not exist"):
        variant_changes(missing)
    _write(tmp_path, "x.yaml", "base: y.yaml\n")
    cyc = _write(tmp_path, "y.yaml", "base: x.yaml\n")
    with pytest.raises(HparamsError, match="cycle"):
        variant_changes(cyc)
    base = _write(tmp_path, "b.yaml", "a: 1\n")
    with pytest.raises(HparamsError, match="command-line overrides"):
        resolve_hparams(base, "a: [unclosed")
    typo = _write(tmp_path, "t.yaml", "base: b.yaml\nab: 2\n")
    with pytest.raises(HparamsError, match="ab is not a key of"):
        render_file(typo)


# -- rendering --

FULL = """\
# The recipe.
seed: 1
lr: 0.1  # the rate at the start
out: !ref runs/<seed>/<lr>
grid: {}
opt: !name:torch.optim.Adam
    lr: !ref <lr>
"""
VARIANT = """\
# Faster: twice the rate.
base: full.yaml
# The rate that trains in half the steps.
lr: 0.2
grid:
    lr: [0.1, 0.2]
"""


def test_rendered_file_is_the_full_file_with_the_variants_lines(tmp_path):
    sources = tmp_path / "task" / "sources"
    sources.mkdir(parents=True)
    _write(sources, "full.yaml", FULL)
    fast = _write(sources, "fast.yaml", VARIANT)
    text = render_file(fast)
    lines = text.splitlines()
    assert lines[0] == GENERATED
    assert "from sources/full.yaml and the keys set in sources/fast.yaml" in (
        " ".join(line.lstrip("# ") for line in lines[:4])
    )
    assert "# Faster: twice the rate.\n\n# The recipe.\nseed: 1\n" in text
    # The variant's comment above its line, the full file's on the line.
    assert (
        "# The rate that trains in half the steps.\n"
        "lr: 0.2  # the rate at the start\n"
    ) in text
    assert "grid:\n    lr: [0.1, 0.2]\nopt:" in text
    assert "base:" not in text
    # The same values as the full file with the variant's changes.
    full, changes = resolve_hparams(fast)
    assert _values(text) == _values(compose_hparams(full), changes)
    assert _values(text, {"lr": 0.5})["out"] == "runs/1/0.5"


def test_render_writes_checks_and_removes(tmp_path):
    sources = tmp_path / "task" / "sources"
    sources.mkdir(parents=True)
    _write(sources, "full.yaml", FULL)
    _write(sources, "fast.yaml", VARIANT)
    written, removed = render(str(tmp_path))
    assert sorted(os.path.basename(p) for p in written) == [
        "fast.yaml",
        "full.yaml",
    ]
    assert removed == [] and out_of_date(str(tmp_path)) == []
    assert render(str(tmp_path)) == ([], [])  # nothing to do
    # A changed source, a hand-edited file, a source gone: out of date.
    rendered = tmp_path / "task" / "full.yaml"
    rendered.write_text(rendered.read_text() + "extra: 1\n")
    os.remove(sources / "fast.yaml")
    stale = {os.path.basename(p) for p in out_of_date(str(tmp_path))}
    assert stale == {"full.yaml", "fast.yaml"}
    command = [sys.executable, "-m", "emotion_invariant.hparams", "render"]
    check = subprocess.run(
        [*command, "--check", "--hparams", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert check.returncode == 1
    assert "out of date:" in check.stderr
    assert check.stderr.splitlines()[-1].startswith("error: the recipe files")
    done = subprocess.run(
        [*command, "--hparams", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "removed" in done.stdout
    assert not (tmp_path / "task" / "fast.yaml").exists()
    assert out_of_date(str(tmp_path)) == []
    # A bad source is one error line, and nothing is written.
    _write(sources, "bad.yaml", "base: full.yaml\nlrr: 1\n")
    bad = subprocess.run(
        [*command, "--hparams", str(tmp_path)], capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith("error: ") and "lrr is not a key" in (
        bad.stderr
    )
    assert len(bad.stderr.splitlines()) == 1
    assert not (tmp_path / "task" / "bad.yaml").exists()


# -- the repository's files --


def test_recipe_files_are_their_sources_rendering():
    """Byte for byte: run `make hparams` after editing a source."""
    assert out_of_date(HPARAMS) == []
    for task in TASKS:
        names = {
            n for n in os.listdir(os.path.join(HPARAMS, task))
            if n.endswith(".yaml")
        }  # fmt: skip
        rendered = {
            os.path.basename(p)
            for p in render_all(HPARAMS)
            if os.path.dirname(p) == os.path.join(HPARAMS, task)
        }
        assert names == rendered, task


def test_recipe_files_stand_for_their_sources_values():
    """The rendering changes lines, never meaning: each file gives the
    values of its full source with its variant's changes."""
    for path in render_all(HPARAMS):
        task, name = os.path.split(path)
        folder = {"data_folder": "unused"}
        full, changes = resolve_hparams(
            os.path.join(task, "sources", name), folder
        )
        with open(path, encoding="utf-8") as f:
            rendered = _values(f.read(), folder)
        assert rendered == _values(compose_hparams(full), changes), path


#: Files that stand on their own besides each task's base: another stage.
STANDALONE = {"pretrain_cluster_contrastive.yaml"}


def test_sources_are_one_full_file_per_stage_and_its_variants():
    for task in TASKS:
        folder = os.path.join(HPARAMS, task, "sources")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".yaml"))
        bases = [n for n in names if n.endswith("_base.yaml")]
        assert len(bases) == 1, (task, names)
        parts = set()
        for name in names:
            with open(os.path.join(folder, name), encoding="utf-8") as f:
                for value in re.findall(r"^include: *(.+)$", f.read(), re.M):
                    parts.update(included_files(value))
        for name in sorted(set(names) - parts):
            full, changes = variant_changes(os.path.join(folder, name))
            if name in bases or name in STANDALONE:
                assert full == os.path.join(folder, name), name
                continue
            # A variant changes the task's base: a copy of the base would
            # be a second source of every fact.
            assert os.path.basename(full) == bases[0], name
            assert changes, name


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
    loaded = []
    for name in ("ser_base.yaml", "pretrain_cluster_contrastive.yaml"):
        with open(os.path.join(folder, "sources", name), encoding="utf-8") as f:
            own = set(re.findall(r"^(\w+):", f.read(), flags=re.M))
        assert not own & set(ENCODER_KEYS), name
        with open(os.path.join(folder, name), encoding="utf-8") as f:
            loaded.append(_values(f.read(), {"data_folder": "unused"}))
    for key in ENCODER_KEYS:
        assert loaded[0][key] == loaded[1][key], key


#: Each ablation row's file, from scratch and on the fine-tuning preset.
ROWS = ("baseline", "copypaste", "copypaste_erl", "emotion_invariant")
METHOD_KEYS = ("copypaste_prob", "erl_weight", "mask_ratio", "mask_prob")


def _speaker_values(name):
    path = os.path.join(HPARAMS, "speaker_verification", name)
    with open(path, encoding="utf-8") as f:
        return _values(f.read(), {"data_folder": "d", "output_folder": "o"})


def test_ablation_rows_are_the_same_switches_on_each_preset():
    base = _speaker_values("ecapa_baseline.yaml")
    finetune = _speaker_values("ecapa_voxceleb_finetune.yaml")
    seen = set()
    for row in ROWS[1:]:
        scratch = _speaker_values(f"ecapa_{row}.yaml")
        tuned = _speaker_values(f"ecapa_voxceleb_finetune_{row}.yaml")
        switches = {  # the values (an object's arguments follow them)
            key: scratch[key]
            for key in scratch
            if scratch[key] != base[key]
            and key != "experiment"
            and not isinstance(scratch[key], dict)
        }
        assert set(switches) <= set(METHOD_KEYS), row
        assert set(switches) > seen, row  # each row adds a method
        seen = set(switches)
        for key in scratch:
            if key != "experiment" and not isinstance(scratch[key], dict):
                expected = switches.get(key, finetune[key])
                assert tuned[key] == expected, (row, key)
    supcon = _speaker_values("ecapa_supcon_aam.yaml")
    with_methods = _speaker_values("ecapa_supcon_aam_emotion_invariant.yaml")
    for key in METHOD_KEYS:
        assert with_methods[key] == scratch[key] != supcon[key], key


def test_ablation_rows_are_written_once():
    """The Makefile, the suite plans and the benchmarks name the row
    files; none sets a method switch itself."""
    setting = re.compile(rf"({'|'.join(METHOD_KEYS)})\W*[:=]\W*[\d.]")
    places = [os.path.join(ROOT, "Makefile")]
    for folder in ("benchmarks", os.path.join("hparams", "suite")):
        for name in sorted(os.listdir(os.path.join(ROOT, folder))):
            places.append(os.path.join(ROOT, folder, name))
    for path in places:
        if not path.endswith((".py", ".yaml", "Makefile")):
            continue
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                assert not setting.search(line), f"{path}:{number}: {line}"
