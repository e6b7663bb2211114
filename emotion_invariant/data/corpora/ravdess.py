"""RAVDESS speech audio (Livingstone and Russo, 2018).

24 actors (odd numbers male), 2 statements, 8 emotions, 48 kHz, as
distributed: ``Actor_NN/MM-VV-EE-II-SS-RR-AA.wav`` (modality, vocal channel,
emotion, intensity, statement, repetition, actor). Song files (vocal
channel 02), when unpacked alongside, are left out and counted.
"""

import logging
import os
import re

from emotion_invariant.data.corpora import (
    find_root,
    listdir,
    preparer,
    subdirs,
)

logger = logging.getLogger(__name__)

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
    """Rows (without durations) for every RAVDESS speech file under the root.

    Arguments
    ---------
    data_folder : str
        The folder holding ``Actor_01`` ... ``Actor_24``.
    problems : emotion_invariant.data.corpora.Problems
        Where unexpected names go (raise, or skip and count).

    Returns
    -------
    list of dict

    Example
    -------
    >>> import os, tempfile
    >>> from emotion_invariant.data.corpora import Problems
    >>> root = tempfile.mkdtemp()
    >>> os.mkdir(os.path.join(root, "Actor_12"))
    >>> name = "03-01-06-01-02-01-12.wav"
    >>> open(os.path.join(root, "Actor_12", name), "w").close()
    >>> row = parse_ravdess(root, Problems())[0]
    >>> row["spk_id"], row["emo"], row["gender"], row["text"]
    ('Actor_12', 'fea', 'F', 'Dogs are sitting by the door.')
    """
    root = find_root(data_folder, _looks_like_ravdess, EXPECTED)
    rows, songs = [], 0
    for actor_dir in subdirs(root, ACTOR_DIR):
        folder = os.path.join(root, actor_dir)
        for name in listdir(folder):
            path = os.path.join(folder, name)
            if os.path.isdir(path) or not name.lower().endswith(".wav"):
                continue
            fields = parse_name(name)
            if fields is None:
                problems(
                    "unexpected file name",
                    f"{path}: unexpected file name; expected 7 two-digit "
                    "codes such as 03-01-05-01-01-01-01.wav",
                )
                continue
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
                    "ID": name[: -len(".wav")],
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


@preparer("ravdess")
def prepare_ravdess(
    data_folder,
    save_folder,
    seed=0,
    held_out=4,
    test_fraction=0.2,
    dev_fraction=0.1,
    max_per_condition=None,
    skip_bad=False,
    jobs=1,
):
    """Prepare RAVDESS speech: manifest, folds, splits and emotional trials.

    Writes ``ravdess.csv`` (``emo_raw`` keeps the corpus's emotion word,
    ``intensity`` normal/strong), ``ravdess_folds.json``,
    ``ravdess_splits.json``, ``ravdess_trials.txt`` and per-split
    manifests into ``save_folder``; skips the work when a previous run
    with the same options finished. Audio stays at 48 kHz on disk.

    Arguments
    ---------
    data_folder : str
        The folder holding ``Actor_01`` ... ``Actor_24``.
    {save_folder}
    {seed}
    {held_out}
    test_fraction, dev_fraction : float
        Speaker fractions of test and dev.
    {max_per_condition}
    {skip_bad}
    {jobs}
    """
    return {"parse": lambda problems: parse_ravdess(data_folder, problems)}
