"""CREMA-D, the crowd-sourced emotional multimodal actors dataset (Cao et
al., 2014).

91 actors, 12 sentences, 6 emotions at up to 4 intensities, as distributed:
``AudioWAV/<actor>_<sentence>_<EMO>_<intensity>.wav``, actor genders in
``VideoDemographics.csv`` when present.
"""

import csv
import os
import re

from emotion_invariant.data.corpora import (
    CorpusError,
    find_root,
    listdir,
    preparer,
)

EMOTIONS = {
    "ANG": "ang",
    "DIS": "dis",
    "FEA": "fea",
    "HAP": "hap",
    "NEU": "neu",
    "SAD": "sad",
}
INTENSITIES = {"LO": "low", "MD": "medium", "HI": "high", "XX": "unspecified"}
SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
NAME = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})\.wav")
EXPECTED = (
    "an AudioWAV/ folder of <actor>_<sentence>_<emotion>_<intensity>.wav "
    "files (e.g. AudioWAV/1001_DFA_ANG_XX.wav)"
)


def _looks_like_cremad(folder):
    return os.path.isdir(os.path.join(folder, "AudioWAV"))


def read_demographics(path):
    """Actor -> gender (``M``/``F``) from ``VideoDemographics.csv``.

    Arguments
    ---------
    path : str
        The demographics file; a missing file gives no genders.

    Returns
    -------
    dict

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "VideoDemographics.csv")
    >>> with open(path, "w") as f:
    ...     _ = f.write("ActorID,Age,Sex,Race,Ethnicity\\n"
    ...                 "1001,51,Male,Caucasian,Not Hispanic\\n")
    >>> read_demographics(path)
    {'1001': 'M'}
    """
    if not os.path.isfile(path):
        return {}
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip() for h in reader.fieldnames or []]
        if "ActorID" not in header or "Sex" not in header:
            raise CorpusError(
                f"{path}: expected columns ActorID and Sex, "
                f"found {','.join(header) or 'nothing'}"
            )
        genders = {}
        for row in reader:
            row = {k.strip(): (v or "").strip() for k, v in row.items() if k}
            sex = row["Sex"].lower()
            genders[row["ActorID"]] = {"male": "M", "female": "F"}.get(sex, "")
    return genders


def parse_cremad(data_folder, problems):
    """Rows (without durations) for every CREMA-D clip under the root.

    Arguments
    ---------
    data_folder : str
        The CREMA-D root (holding ``AudioWAV/``).
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
    >>> os.mkdir(os.path.join(root, "AudioWAV"))
    >>> open(os.path.join(root, "AudioWAV", "1001_DFA_ANG_XX.wav"), "w").close()
    >>> row = parse_cremad(root, Problems())[0]
    >>> row["spk_id"], row["emo"], row["text"]
    ('1001', 'ang', "Don't forget a jacket.")
    """
    root = find_root(data_folder, _looks_like_cremad, EXPECTED)
    genders = read_demographics(os.path.join(root, "VideoDemographics.csv"))
    audio = os.path.join(root, "AudioWAV")
    rows = []
    for name in listdir(audio):
        path = os.path.join(audio, name)
        if os.path.isdir(path) or not name.lower().endswith(".wav"):
            continue
        match = NAME.fullmatch(name)
        if (
            match is None
            or match[2] not in SENTENCES
            or match[3] not in EMOTIONS
            or match[4] not in INTENSITIES
        ):
            problems(
                "unexpected file name",
                f"{path}: unexpected file name; expected <actor>_<sentence>_"
                f"<{'|'.join(EMOTIONS)}>_<{'|'.join(INTENSITIES)}>.wav",
            )
            continue
        actor, sentence, emo, intensity = match.groups()
        rows.append(
            {
                "ID": name[: -len(".wav")],
                "wav": path,
                "spk_id": actor,
                "emo": EMOTIONS[emo],
                "emo_raw": emo,
                "intensity": INTENSITIES[intensity],
                "gender": genders.get(actor, ""),
                "lang": "en",
                "text": SENTENCES[sentence],
            }
        )
    return rows


@preparer("cremad")
def prepare_cremad(
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
    """Prepare CREMA-D: manifest, speaker folds, splits and emotional trials.

    Writes ``cremad.csv`` (``emo_raw`` keeps the three-letter label,
    ``intensity`` the level), ``cremad_folds.json``, ``cremad_splits.json``,
    ``cremad_trials.txt`` and per-split manifests into ``save_folder``;
    skips the work when a previous run with the same options finished.
    Genders come from ``VideoDemographics.csv`` when it is in the root.

    Arguments
    ---------
    data_folder : str
        The CREMA-D root, holding ``AudioWAV/``.
    {save_folder}
    {seed}
    {held_out}
    test_fraction, dev_fraction : float
        Speaker fractions of test and dev.
    {max_per_condition}
    {skip_bad}
    {jobs}
    """
    return {"parse": lambda problems: parse_cremad(data_folder, problems)}
