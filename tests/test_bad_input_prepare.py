"""Bad input and faults met by data preparation: each test names a fault.

What the user sees and what is left on disk for each is summed up in
``docs/reliability.md``.
"""

import json
import logging
import os
import stat

import numpy as np
import pytest
import soundfile
from fake_corpora import EMODB_SPEAKERS, make_emodb, make_synth, write_wav

from emotion_invariant.atomic import atomic_open
from emotion_invariant.corpora import steps, synth
from emotion_invariant.corpora.emodb import EMOTIONS as EMODB_EMOTIONS
from emotion_invariant.corpora.prepare import prepare
from emotion_invariant.data import trials
from emotion_invariant.data.manifest import ManifestError, read_manifest


def _make(corpus, root, speakers=None):
    if corpus == "synth":
        emotions = speakers or (("neu", "ang"),) * 6
        make_synth(str(root), emotions)
    else:
        make_emodb(str(root), speakers or EMODB_SPEAKERS)


def _snapshot(folder):
    """Every file under ``folder`` (hidden ones too) -> its bytes."""
    files = {}
    for top, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(top, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = f.read()
    return files


@pytest.mark.parametrize("corpus", ["synth", "emodb"])
def test_prepare_skipped_for_another_or_changed_data_folder(corpus, tmp_path):
    corpus_c, corpus_b, out = (tmp_path / n for n in ("C", "CorpusB", "S"))
    _make(corpus, corpus_c)
    _make(corpus, corpus_b)
    prepare(corpus, str(corpus_c), str(out))
    prepare(corpus, str(corpus_b), str(out))
    manifest = out / f"{corpus}.csv"
    rows = read_manifest(str(manifest))
    assert all(r["wav"].startswith(str(corpus_b) + os.sep) for r in rows)

    record = out / f"{corpus}_prepare.json"
    before = record.stat().st_ino
    changed = rows[0]["wav"]
    soundfile.write(changed, np.zeros(4800, dtype=np.float32), 16000)
    prepare(corpus, str(corpus_b), str(out))
    assert record.stat().st_ino != before, "changed audio was not prepared"
    if corpus == "emodb":
        rows = {r["wav"]: r for r in read_manifest(str(manifest))}
        assert float(rows[changed]["duration"]) == pytest.approx(0.3)
        # Outputs written into the corpus folder do not count as a change.
        prepare(corpus, str(corpus_b), str(corpus_b))
        record = corpus_b / f"{corpus}_prepare.json"
        before = record.stat().st_ino
        prepare(corpus, str(corpus_b), str(corpus_b))
        assert record.stat().st_ino == before


@pytest.mark.parametrize("corpus", ["emodb", "synth"])
def test_failed_prepare_leaves_mixed_folder(corpus, tmp_path, monkeypatch):
    root, other = tmp_path / "corpus", tmp_path / "other"
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    _make(corpus, root)
    _make(corpus, other)
    prepare(corpus, str(root), str(out), seed=0)
    before = _snapshot(out)

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    # Fail midway: after the manifests, before the trial list.
    for module in (steps, synth.prepare, trials):
        monkeypatch.setattr(module, "write_trials", disk_full, raising=False)
    with pytest.raises(OSError, match="No space left"):
        prepare(corpus, str(other), str(out), seed=1)
    assert _snapshot(out) == before
    with pytest.raises(OSError, match="No space left"):
        prepare(corpus, str(other), str(fresh), seed=1)
    assert not fresh.exists()
    monkeypatch.undo()

    prepare(corpus, str(other), str(out), seed=1)
    prepare(corpus, str(other), str(fresh), seed=1)
    assert _snapshot(out) == _snapshot(fresh) != before


def test_atomic_writes_are_mode_0600_whatever_the_umask(tmp_path):
    root, out = tmp_path / "emodb", tmp_path / "out"
    make_emodb(str(root), EMODB_SPEAKERS[:4])
    old = os.umask(0o022)
    try:
        prepare("emodb", str(root), str(out))
        os.umask(0o027)
        with atomic_open(tmp_path / "private.txt") as f:
            f.write("x")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in out.iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes
    assert stat.S_IMODE((tmp_path / "private.txt").stat().st_mode) == 0o640


@pytest.fixture
def unwritable(tmp_path, monkeypatch):
    """A folder no file can be written in (mode 0500)."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    if os.geteuid() == 0:
        # Root ignores modes: refuse as the kernel would for anyone else.
        real_open, real_mkdir = os.open, os.mkdir

        def guard(real):
            def refuse(path, *args, **kwargs):
                if os.path.abspath(os.fspath(path)).startswith(str(folder)):
                    raise PermissionError(13, "Permission denied", path)
                return real(path, *args, **kwargs)

            return refuse

        monkeypatch.setattr(os, "open", guard(real_open))
        monkeypatch.setattr(os, "mkdir", guard(real_mkdir))
    yield folder
    folder.chmod(0o700)


@pytest.mark.parametrize("cli", ["synth", "trials"])
def test_unwritable_output_folder_gives_traceback(
    cli, unwritable, tmp_path, capsys
):
    if cli == "synth":
        argv = ["--out", str(unwritable), "--speakers", "3"]
        argv += ["--utterances", "1", "--emotions", "neu", "--jobs", "1"]
        status = synth.main(argv)
    else:
        make_synth(str(tmp_path / "corpus"))
        manifest = str(tmp_path / "corpus" / "synth.csv")
        status = trials.main([manifest, str(unwritable / "trials.txt")])
    err = capsys.readouterr().err
    assert status != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert str(unwritable) in lines[0] and "Permission denied" in lines[0]
    assert list(unwritable.iterdir()) == []


@pytest.mark.parametrize("corpus", ["synth", "emodb"])
def test_single_emotion_speakers_fail_after_writing(corpus, tmp_path):
    root, out = tmp_path / "corpus", tmp_path / "out"
    if corpus == "synth":
        emotions = ("neu", "ang", "sad", "hap", "neu", "ang")
        make_synth(str(root), [[e] for e in emotions])
        listed = ["spk004 neu"]
    else:
        listed = []
        for k, spk in enumerate(EMODB_SPEAKERS):
            letter = "WLEAFTNWLE"[k]
            for text in ("a01", "b02"):
                write_wav(str(root / "wav" / f"{spk}{text}{letter}a.wav"))
            listed.append(f"{spk} {EMODB_EMOTIONS[letter]}")
    with pytest.raises(ManifestError) as error:
        prepare(corpus, str(root), str(out))
    message = str(error.value)
    assert "test split" in message, message
    assert any(pair in message for pair in listed), message
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.parametrize("corpus", ["emodb", "synth"])
def test_three_speakers_refused_whole(corpus, tmp_path, caplog):
    root, out = tmp_path / "corpus", tmp_path / "out"
    if corpus == "synth":
        # The smallest corpus the synthesizer makes: one test speaker.
        make_synth(str(root), [["neu", "ang"]] * 3)
        with caplog.at_level(logging.WARNING):
            prepare("synth", str(root), str(out))
        names = sorted(p.name for p in out.iterdir())
        assert names == [
            "synth.csv",
            "synth_dev.csv",
            "synth_prepare.json",
            "synth_test.csv",
            "synth_train.csv",
        ]
        assert any("no trial list" in r.getMessage() for r in caplog.records)
        return
    make_emodb(str(root), EMODB_SPEAKERS[:3])
    with caplog.at_level(logging.WARNING):
        outputs = prepare("emodb", str(root), str(out))
    rows = read_manifest(outputs["manifest"])
    assert {r["spk_id"] for r in rows} == set(EMODB_SPEAKERS[:3])
    assert {r["split"] for r in rows} == {"test"}
    with open(outputs["trials"]) as f:
        enrolled = {line.split()[1][:2] for line in f}
    assert enrolled == set(EMODB_SPEAKERS[:3])
    assert "train" not in outputs and "dev" not in outputs
    assert not (out / "emodb_train.csv").exists()
    warned = [r.getMessage() for r in caplog.records]
    assert any("at least 4 speakers" in m for m in warned), warned
    with open(outputs["prepare"]) as f:
        assert json.load(f)["summary"]["splits"] == {"test": 3}
