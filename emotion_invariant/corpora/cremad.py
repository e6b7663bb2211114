"""CREMA-D, the crowd-sourced emotional multimodal actors dataset (Cao et
al., 2014).

91 actors, 12 sentences, 6 emotions at up to 4 intensities, as distributed:
``AudioWAV/<actor>_<sentence>_<EMO>_<intensity>.wav``, actor genders in
``VideoDemographics.csv`` when present.
"""

import os
import re

from emotion_invariant.corpora.base import Corpus
from emotion_invariant.corpora.files import audio_files, find_root, read_table

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


def _parse_name(name):
    """The fields of a CREMA-D file name whose codes all exist, or None."""
    match = NAME.fullmatch(name)
    if (
        match is None
        or match[2] not in SENTENCES
        or match[3] not in EMOTIONS
        or match[4] not in INTENSITIES
    ):
        return None
    return match


def _looks_like_cremad(folder):
    return os.path.isdir(os.path.join(folder, "AudioWAV"))


def read_demographics(path):
    """Actor -> gender (``M``/``F``) from ``VideoDemographics.csv``; none
    when the file is missing.

    Example
    -------
    >>> CORPUS.example("gender")
    ('M',)
    """
    if not os.path.isfile(path):
        return {}
    return {
        row["ActorID"]: {"male": "M", "female": "F"}.get(row["Sex"].lower(), "")
        for row in read_table(path, ("ActorID", "Sex"))
    }


def parse_cremad(data_folder, problems):
    """Rows (without durations) for every CREMA-D clip under the root
    (``AudioWAV/``), with genders from ``VideoDemographics.csv`` when it is
    there: the ``parse`` of :data:`CORPUS`.

    Example
    -------
    >>> CORPUS.example("spk_id", "emo", "intensity", "gender", "text")
    ('1001', 'ang', 'unspecified', 'M', "Don't forget a jacket.")
    """
    root = find_root(data_folder, _looks_like_cremad, EXPECTED)
    genders = read_demographics(os.path.join(root, "VideoDemographics.csv"))
    audio = os.path.join(root, "AudioWAV")
    expected = (
        f"<actor>_<sentence>_<{'|'.join(EMOTIONS)}>_"
        f"<{'|'.join(INTENSITIES)}>.wav"
    )
    rows = []
    for path, uid, match in audio_files(audio, _parse_name, expected, problems):
        actor, sentence, emo, intensity = match.groups()
        rows.append(
            {
                "ID": uid,
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


CORPUS = Corpus(
    "cremad",
    parse_cremad,
    summary="Prepare CREMA-D: manifest, speaker folds, splits and emotional "
    "trials.",
    root="The CREMA-D root, holding ``AudioWAV/``.",
    columns="``emo_raw`` keeps the three-letter label, ``intensity`` the level",
    licence="Open Database License 1.0 (contents: DbCL 1.0)",
    notes="Genders come from ``VideoDemographics.csv`` when it is in the root.",
    sample={
        "AudioWAV/1001_DFA_ANG_XX.wav": "",
        "VideoDemographics.csv": "ActorID,Age,Sex,Race,Ethnicity\n"
        "1001,51,Male,Caucasian,Not Hispanic\n",
    },
)
prepare_cremad = CORPUS.preparer()
