"""VoxCeleb1/2 (Nagrani et al., 2017; Chung et al., 2018) for pretraining
speaker models.

As distributed (VoxCeleb2 after SpeechBrain's m4a -> wav conversion):
``wav/idXXXXX/<video>/<utterance>.wav``. VoxCeleb has no emotion labels:
every row gets ``emo = oth`` (and an empty ``emo_raw``), so that emotion
objectives can mask it out. Speaker genders come from ``vox1_meta.csv`` or
``vox2_meta.csv`` when present.
"""

import csv
import os
import random
from collections import defaultdict

from emotion_invariant.corpora.base import Corpus, Option
from emotion_invariant.corpora.files import (
    CorpusError,
    find_root,
    listdir,
    subdirs,
)

SPEAKER_DIR = r"id\d+"
META_FILES = ("vox1_meta.csv", "vox2_meta.csv")
CONVERT = (
    "VoxCeleb2 audio is distributed as .m4a, which this project reads only "
    "once converted to .wav, as SpeechBrain's VoxCeleb recipe asks: convert "
    "every file, keeping the tree, into <root>/wav/idXXXXX/<video>/"
    "<utterance>.wav, e.g. `ffmpeg -i aac/id00012/21Uxsk56VDQ/00001.m4a "
    "-ac 1 -ar 16000 wav/id00012/21Uxsk56VDQ/00001.wav`, then prepare the "
    "folder holding wav/"
)
EXPECTED = "wav/idXXXXX/<video>/<utterance>.wav (VoxCeleb2: aac/ converted)"


def _looks_like_voxceleb(folder):
    return any(
        subdirs(os.path.join(folder, d), SPEAKER_DIR) for d in ("wav", "aac")
    )


def read_meta(root):
    """Speaker -> gender (``M``/``F``) from VoxCeleb meta files, if any.

    Reads ``vox1_meta.csv`` (tab-separated) and ``vox2_meta.csv``
    (comma-separated), in the root or its ``meta/`` folder.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "vox1_meta.csv"), "w") as f:
    ...     _ = f.write("VoxCeleb1 ID\\tVGGFace1 ID\\tGender\\tSet\\n"
    ...                 "id10001\\tA.J._Buckley\\tm\\tdev\\n")
    >>> read_meta(d)
    {'id10001': 'M'}
    """
    genders = {}
    for folder in (root, os.path.join(root, "meta")):
        for name in META_FILES:
            path = os.path.join(folder, name)
            if not os.path.isfile(path):
                continue
            with open(path, newline="", encoding="utf-8-sig") as f:
                text = f.read().splitlines()
            if not text:
                continue
            delimiter = "\t" if "\t" in text[0] else ","
            reader = csv.reader(text, delimiter=delimiter)
            header = [h.strip().lower() for h in next(reader)]
            if "gender" not in header:
                raise CorpusError(
                    f"{path}: expected a Gender column, found "
                    f"{','.join(header) or 'nothing'}"
                )
            column = header.index("gender")
            for fields in reader:
                if len(fields) > column and fields[0].strip():
                    gender = fields[column].strip().lower()
                    genders[fields[0].strip()] = {"m": "M", "f": "F"}.get(
                        gender, ""
                    )
    return genders


def parse_voxceleb(data_folder, problems):
    """Rows (without durations) for every VoxCeleb utterance under ``wav/``,
    genders from the meta files when there: the ``parse`` of
    :data:`CORPUS`.

    Example
    -------
    >>> CORPUS.example("ID", "spk_id", "emo")
    ('id10001--1zcIwhmdeo4--00001', 'id10001', 'oth')
    """
    root = find_root(data_folder, _looks_like_voxceleb, EXPECTED)
    audio = os.path.join(root, "wav")
    if not subdirs(audio, SPEAKER_DIR):
        raise CorpusError(f"{root}: only aac/ (.m4a) audio found. {CONVERT}")
    genders = read_meta(root)
    speakers = set(subdirs(audio, SPEAKER_DIR))
    rows = []
    for name in subdirs(audio):
        if name not in speakers:
            problems(
                "unexpected folder",
                f"{os.path.join(audio, name)}: unexpected folder; expected "
                "speaker folders idXXXXX",
            )
            continue
        spk_dir = os.path.join(audio, name)
        for video in subdirs(spk_dir):
            video_dir = os.path.join(spk_dir, video)
            for utt in listdir(video_dir):
                path = os.path.join(video_dir, utt)
                if utt.lower().endswith(".m4a"):
                    raise CorpusError(f"{path}: .m4a audio. {CONVERT}")
                if not utt.lower().endswith(".wav"):
                    continue
                rows.append(
                    {
                        "ID": f"{name}--{video}--{utt[: -len('.wav')]}",
                        "wav": path,
                        "spk_id": name,
                        "emo": "oth",
                        "emo_raw": "",
                        "gender": genders.get(name, ""),
                    }
                )
    return rows


def video_split(rows, dev_fraction, seed):
    """Per speaker, hold out a fraction of videos (all their utterances) as dev.

    Speaker classifiers are validated on their training speakers, so this
    split shares speakers by design; videos are kept whole so that dev
    utterances do not share a recording session with training ones.

    Arguments
    ---------
    rows : list of dict
        VoxCeleb rows (``ID`` is ``spk--video--utt``).
    dev_fraction : float
        Wanted fraction of each speaker's videos in dev.
    seed : int
        Seed of the choice.

    Example
    -------
    >>> rows = [{"ID": f"id1--v{v}--0000{u}", "spk_id": "id1"}
    ...         for v in range(10) for u in range(2)]
    >>> split = video_split(rows, 0.1, 0)
    >>> sorted({r["split"] for r in split})
    ['dev', 'train']
    >>> sum(r["split"] == "dev" for r in split)
    2
    """
    if not 0 < dev_fraction < 1:
        raise ValueError(f"dev_fraction must be in (0, 1), got {dev_fraction}")
    videos = defaultdict(set)
    for row in rows:
        videos[row["spk_id"]].add(row["ID"].split("--")[1])
    rng = random.Random(seed)
    dev = set()
    for spk in sorted(videos):
        names = sorted(videos[spk])
        if len(names) < 2:
            continue
        rng.shuffle(names)
        count = max(1, round(dev_fraction * len(names)))
        dev.update((spk, v) for v in names[:count])
    for row in rows:
        key = (row["spk_id"], row["ID"].split("--")[1])
        row["split"] = "dev" if key in dev else "train"
    return rows


def _by_videos(options):
    """Under ``split="videos"``: a dev split of whole videos, no folds."""
    if options["split"] != "videos":
        return {}

    def then(rows):
        return video_split(rows, options["dev_fraction"], options["seed"])

    return {"then": then, "fold_of": False, "presplit": True}


CORPUS = Corpus(
    "voxceleb",
    parse_voxceleb,
    summary="Prepare VoxCeleb1/2 for speaker-model pretraining.",
    root="The folder holding ``wav/idXXXXX/<video>/<utterance>.wav``.",
    columns="``emo`` is ``oth`` throughout: VoxCeleb has no emotion labels",
    licence="CC BY 4.0 (metadata); video copyright stays with its owners",
    notes="With the default split there are no folds, no splits file and no "
    "trial list: VoxCeleb only trains speaker models here; emotional trials "
    "come from the emotional corpora.",
    options=(
        Option(
            "split",
            "videos",
            "str",
            '``"videos"``: per speaker, whole videos go to dev '
            "(``dev_fraction`` of them), the rest to train: a "
            "speaker-classifier validation split, sharing speakers by design. "
            '``"speakers"``: train/dev/test by speakers, with folds and an '
            "(``oth-oth``) trial list.",
            ("videos", "speakers"),
        ),
    ),
    docs={
        "held_out": ("int", 'Speakers per fold with ``split="speakers"``.'),
        "test_fraction, dev_fraction": (
            "float",
            "Split fractions (of speakers, or of each speaker's videos).",
        ),
        "max_per_condition": (
            "int, optional",
            'Cap on target (and non-target) trials with ``split="speakers"``.',
        ),
        "jobs": (
            "int",
            "Threads reading audio headers (a million files: use several).",
        ),
    },
    plan=_by_videos,
    sample={"wav/id10001/1zcIwhmdeo4/00001.wav": ""},
)
prepare_voxceleb = CORPUS.preparer()
