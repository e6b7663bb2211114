"""The audio check's cache: a later check reads only new or changed files,
and never passes a file on what an older version of it was."""

import json
import logging
import os

import numpy as np
import pytest
import soundfile

from emotion_invariant.corpora import audio_check
from emotion_invariant.corpora.audio_check import (
    AudioCache,
    check_manifest_audio,
)
from emotion_invariant.data.manifest import ManifestError, write_manifest


@pytest.fixture
def corpus(tmp_path):
    """Four files, the last one silent, and their manifest."""
    root = tmp_path / "corpus"
    root.mkdir()
    rows = []
    for k in range(4):
        level = 0.0 if k == 3 else 0.1 * (k + 1)
        soundfile.write(root / f"u{k}.wav", np.full(3200, level), 16000)
        rows.append(
            {
                "ID": f"u{k}",
                "duration": 0.2,
                "wav": f"$data_root/u{k}.wav",
                "spk_id": "s1",
                "emo": "neu",
            }
        )
    manifest = tmp_path / "m.csv"
    write_manifest(rows, str(manifest))
    return root, str(manifest)


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.text = []

    def emit(self, record):
        self.text.append(record.getMessage())


@pytest.fixture
def warnings():
    handler = _Warnings()
    logger = logging.getLogger(audio_check.__name__)
    logger.addHandler(handler)
    yield handler.text
    logger.removeHandler(handler)


def _no_reading(monkeypatch):
    """Fail the test if the check opens any audio file."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"audio read: {args[0]}")

    monkeypatch.setattr(audio_check.soundfile, "read", refuse)
    monkeypatch.setattr(audio_check.soundfile, "info", refuse)


def _retouch(path, ns):
    """Give ``path`` a modification time other than the one it has."""
    os.utime(path, ns=(ns, ns))


def test_second_check_reads_no_audio(corpus, tmp_path, monkeypatch, warnings):
    root, manifest = corpus
    cache = str(tmp_path / "cache")
    assert check_manifest_audio(manifest, str(root), 0.1, cache=cache) == (
        manifest
    )
    assert "1 of 4 utterance(s) are silent" in warnings[-1]
    _no_reading(monkeypatch)
    warnings.clear()
    assert check_manifest_audio(manifest, str(root), 0.1, cache=cache) == (
        manifest
    )
    # the silent file is still counted, from what the cache holds
    assert "1 of 4 utterance(s) are silent" in warnings[-1]
    assert "ID u3" in warnings[-1]
    # without the cache the same check reads the files (and the refusal
    # reads as an unreadable file)
    with pytest.raises(ManifestError, match="audio read"):
        check_manifest_audio(manifest, str(root), 0.1)


def test_a_changed_file_is_read_again(corpus, tmp_path):
    root, manifest = corpus
    cache = str(tmp_path / "cache")
    check_manifest_audio(manifest, str(root), 0.1, cache=cache)
    # shorter: another size
    soundfile.write(root / "u0.wav", np.full(160, 0.1), 16000)
    with pytest.raises(ManifestError, match=r"ID u0\): 10 ms of audio"):
        check_manifest_audio(manifest, str(root), 0.1, cache=cache)


def test_same_size_new_time_is_read_again(corpus, tmp_path, warnings):
    root, manifest = corpus
    cache = str(tmp_path / "cache")
    check_manifest_audio(manifest, str(root), 0.1, cache=cache)
    wav = root / "u1.wav"
    before = os.stat(wav)
    soundfile.write(wav, np.zeros(3200), 16000)  # same size, now silent
    _retouch(wav, before.st_mtime_ns + 10**9)
    assert os.stat(wav).st_size == before.st_size
    warnings.clear()
    check_manifest_audio(manifest, str(root), 0.1, cache=cache)
    assert "2 of 4 utterance(s) are silent" in warnings[-1]


def test_duration_limit_applies_to_cached_files(corpus, tmp_path):
    """The cache keeps lengths, not verdicts: a larger minimum still
    refuses a file that passed a smaller one."""
    root, manifest = corpus
    cache = str(tmp_path / "cache")
    check_manifest_audio(manifest, str(root), 0.1, cache=cache)
    with pytest.raises(ManifestError, match="4 of 4 row"):
        check_manifest_audio(manifest, str(root), 0.5, cache=cache)


def test_segments_are_stored_apart(tmp_path):
    root = tmp_path / "corpus"
    root.mkdir()
    audio = np.concatenate([np.zeros(3200), np.full(3200, 0.5)])
    soundfile.write(root / "a.wav", audio, 16000)
    row = {"duration": 0.2, "wav": "$data_root/a.wav", "spk_id": "s1"}
    rows = [
        {**row, "ID": "quiet", "emo": "neu", "start": 0, "stop": 3200},
        {**row, "ID": "loud", "emo": "neu", "start": 3200, "stop": 6400},
    ]
    manifest = str(tmp_path / "m.csv")
    write_manifest(rows, manifest)
    cache = AudioCache(str(tmp_path / "cache"), str(root))
    check_manifest_audio(manifest, str(root), 0.1, cache=cache.folder)
    stored = AudioCache(cache.folder, str(root)).entries
    peaks = sorted(entry[-1] for entry in stored.values())
    assert peaks == [0.0, 0.5]


def test_unreadable_cache_is_ignored(corpus, tmp_path, monkeypatch):
    root, manifest = corpus
    cache = tmp_path / "cache"
    check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))
    (written,) = cache.iterdir()
    written.write_text("{not json")
    _no_reading(monkeypatch)
    with pytest.raises(ManifestError, match="audio read"):
        check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))


def test_another_corpus_folder_has_its_own_cache(corpus, tmp_path):
    root, manifest = corpus
    cache = tmp_path / "cache"
    check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))
    copy = tmp_path / "copy"
    copy.mkdir()
    for wav in root.iterdir():
        copy.joinpath(wav.name).write_bytes(wav.read_bytes())
    check_manifest_audio(manifest, str(copy), 0.1, cache=str(cache))
    files = sorted(cache.iterdir())
    assert len(files) == 2
    roots = {json.loads(f.read_text())["data_root"] for f in files}
    assert roots == {str(root.resolve()), str(copy.resolve())}


def test_unwritable_cache_warns_and_the_check_goes_on(
    corpus, tmp_path, warnings
):
    root, manifest = corpus
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    assert check_manifest_audio(
        manifest, str(root), 0.1, cache=str(blocker)
    ) == (manifest)
    assert any("audio_cache: could not write" in w for w in warnings)
    assert blocker.read_text() == ""


def test_unreadable_files_are_not_cached(corpus, tmp_path):
    root, manifest = corpus
    cache = tmp_path / "cache"
    (root / "u2.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    with pytest.raises(ManifestError, match="ID u2.*unreadable"):
        check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))
    stored = AudioCache(str(cache), str(root)).entries
    assert len(stored) == 3
    assert not any("u2.wav" in key for key in stored)


def test_cache_must_be_a_folder_name(corpus):
    root, manifest = corpus
    with pytest.raises(ManifestError, match="audio_cache: 5 is not valid"):
        check_manifest_audio(manifest, str(root), 0.1, cache=5)


def _entries(transform):
    """A cache file edited by ``transform`` of each entry."""

    def edit(stored):
        stored["files"] = {k: transform(v) for k, v in stored["files"].items()}
        return stored

    return edit


MALFORMED = {
    "short entries": (_entries(lambda e: e[:2]), "expected a list of 5"),
    "long entries": (_entries(lambda e: [*e, 1]), "expected a list of 5"),
    "numbers as text": (
        _entries(lambda e: [str(v) for v in e]),
        "size '",
    ),
    "no sample rate": (
        _entries(lambda e: [*e[:3], 0, e[4]]),
        "sample rate 0",
    ),
    "boolean frames": (
        _entries(lambda e: [*e[:2], True, *e[3:]]),
        "frames True",
    ),
    "null peak": (_entries(lambda e: [*e[:4], None]), "peak None"),
    "entries in a list": (
        lambda stored: {**stored, "files": list(stored["files"].values())},
        "'files' is not a JSON object",
    ),
    "a list": (lambda stored: list(stored["files"].values()), "a list"),
    "no files": (lambda stored: {"data_root": stored["data_root"]}, "files"),
    "null": (lambda stored: None, "null"),
}


@pytest.mark.parametrize("shape", sorted(MALFORMED))
def test_cache_of_the_wrong_shape_is_ignored_and_rewritten(
    shape, corpus, tmp_path, monkeypatch, warnings
):
    """Valid JSON that is not what the check writes: a warning naming the
    file and what is wrong, every file read again, the cache rewritten."""
    edit, what = MALFORMED[shape]
    root, manifest = corpus
    cache = tmp_path / "cache"
    check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))
    (written,) = cache.iterdir()
    good = json.loads(written.read_text())
    written.write_text(json.dumps(edit(json.loads(written.read_text()))))
    warnings.clear()
    assert check_manifest_audio(manifest, str(root), 0.1, cache=str(cache)) == (
        manifest
    )
    (ignored,) = [w for w in warnings if "audio_cache: ignoring" in w]
    assert str(written) in ignored
    assert what in ignored
    assert json.loads(written.read_text()) == good
    _no_reading(monkeypatch)
    warnings.clear()
    check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))
    assert not any("audio_cache" in w for w in warnings)


def test_unreadable_cache_is_named_and_rewritten(corpus, tmp_path, warnings):
    root, manifest = corpus
    cache = tmp_path / "cache"
    check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))
    (written,) = cache.iterdir()
    good = written.read_text()
    written.write_text("{not json")
    warnings.clear()
    check_manifest_audio(manifest, str(root), 0.1, cache=str(cache))
    (ignored,) = [w for w in warnings if "audio_cache: ignoring" in w]
    assert f"{written}: not JSON" in ignored
    assert written.read_text() == good


def test_a_missing_cache_gives_no_warning(corpus, tmp_path, warnings):
    root, manifest = corpus
    check_manifest_audio(manifest, str(root), 0.1, cache=str(tmp_path / "c"))
    assert not any("audio_cache" in w for w in warnings)
