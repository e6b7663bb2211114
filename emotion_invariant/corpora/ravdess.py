"""RAVDESS speech audio (Livingstone and Russo, 2018).

24 actors (odd numbers male), 2 statements, 8 emotions, 48 kHz, as
distributed: ``Actor_NN/MM-VV-EE-II-SS-RR-AA.wav`` (modality, vocal channel,
emotion, intensity, statement, repetition, actor). Song files (vocal
channel 02), when unpacked alongside, are left out and counted.
"""

import logging
import os
import re

from emotion_invariant.corpora.base import Corpus
from emotion_invariant.corpora.files import (
    audio_files,
    find_root,
    listdir,
    subdirs,
)

EMOTIONS = {
    "01": ("neu", "neutral"),
    "02": ("cal", "calm"),
    "03": ("hap", "happy"),
    "04": ("sad", "sad"),
    "05": ("ang", "angry"),
    "06": ("fea", "fearful"),
    "07": ("dis", "disgust"),
    "08": ("sur", "surprised"),
}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {
    "01": "Kids are talking by the door.",
    "02": "Dogs are sitting by the door.",
}
NAME = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav")
ACTOR_DIR = r"Actor_\d\d"
EXPECTED = (
    "Actor_01/ ... Actor_24/ folders of 7-part names such as "
    "03-01-05-01-01-01-01.wav"
)

logger = logging.getLogger(__name__)


def _looks_like_ravdess(folder):
    # The song part has the same layout; it is not the speech root.
    channels = {
        fields["channel"]
        for actor in subdirs(folder, ACTOR_DIR)
        for fields in map(parse_name, listdir(os.path.join(folder, actor)))
        if fields is not None
    }
    return bool(subdirs(folder, ACTOR_DIR)) and channels != {"02"}


def parse_name(name):
    """The fields of a RAVDESS file name, or ``None`` when it is not one.

    Arguments
    ---------
    name : str
        File name, e.g. ``03-01-05-01-01-01-01.wav``.

    Returns
    -------
    dict or None
        ``modality, channel, emotion, intensity, statement, repetition,
        actor`` as two-digit strings, checked against the corpus codes.

    Example
    -------
    >>> parse_name("03-01-05-02-01-01-12.wav")["emotion"]
    '05'
    >>> parse_name("03-01-09-01-01-01-12.wav") is None
    True
    """
    match = NAME.fullmatch(name)
    if match is None:
        return None
    keys = (
        "modality",
        "channel",
        "emotion",
        "intensity",
        "statement",
        "repetition",
        "actor",
    )
    fields = dict(zip(keys, match.groups()))
    valid = (
        fields["modality"] in ("01", "02", "03")
        and fields["channel"] in ("01", "02")
        and fields["emotion"] in EMOTIONS
        and fields["intensity"] in INTENSITIES
        and fields["statement"] in STATEMENTS
        and fields["repetition"] in ("01", "02")
        and 1 <= int(fields["actor"]) <= 99
    )
    return fields if valid else None


def parse_ravdess(data_folder, problems):
    """Rows (without durations) for every RAVDESS speech file under the
    root (``Actor_NN/``), song files left out and counted: the ``parse`` of
    :data:`CORPUS`.

    Example
    -------
    >>> CORPUS.example("spk_id", "emo", "gender", "text")
    ('Actor_12', 'fea', 'F', 'Dogs are sitting by the door.')
    """
    root = find_root(data_folder, _looks_like_ravdess, EXPECTED)
    rows, songs = [], 0
    for actor_dir in subdirs(root, ACTOR_DIR):
        folder = os.path.join(root, actor_dir)
        expected = "7 two-digit codes such as 03-01-05-01-01-01-01.wav"
        for path, uid, fields in audio_files(
            folder, parse_name, expected, problems
        ):
            if fields["actor"] != actor_dir[-2:]:
                problems(
                    "unexpected file name",
                    f"{path}: actor {fields['actor']} in the name, but the "
                    f"file is in {actor_dir}",
                )
                continue
            if fields["channel"] == "02":
                songs += 1
                continue
            emo, raw = EMOTIONS[fields["emotion"]]
            actor = fields["actor"]
            rows.append(
                {
                    "ID": uid,
                    "wav": path,
                    "spk_id": f"Actor_{actor}",
                    "emo": emo,
                    "emo_raw": raw,
                    "intensity": INTENSITIES[fields["intensity"]],
                    "gender": "M" if int(actor) % 2 else "F",
                    "lang": "en",
                    "text": STATEMENTS[fields["statement"]],
                }
            )
    if songs:
        logger.info(
            "ravdess: left out %d song file(s) (vocal channel 02)", songs
        )
    return rows


CORPUS = Corpus(
    "ravdess",
    parse_ravdess,
    summary="Prepare RAVDESS speech: manifest, folds, splits and emotional "
    "trials.",
    root="The folder holding ``Actor_01`` ... ``Actor_24``.",
    columns="``emo_raw`` keeps the corpus's emotion word, ``intensity`` "
    "normal/strong",
    licence="CC BY-NC-SA 4.0",
    notes="Audio stays at 48 kHz on disk.",
    sample={"Actor_12/03-01-06-01-02-01-12.wav": ""},
)
prepare_ravdess = CORPUS.preparer()
