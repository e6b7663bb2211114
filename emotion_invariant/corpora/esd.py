"""ESD, the Emotional Speech Dataset (Zhou, Sisman, Liu and Li, 2021).

20 speakers (Mandarin 0001-0010, English 0011-0020), 5 emotions, as
distributed: ``<spk>/<Emotion>/[train|evaluation|test/]<spk>_<6 digits>.wav``
with transcripts in ``<spk>/<spk>.txt``. The official split (per utterance,
speakers shared) is kept in ``official_split`` and used as ``split`` on
request.
"""

import os
import re

from emotion_invariant.corpora.base import Corpus, official_split
from emotion_invariant.corpora.files import (
    CorpusError,
    audio_files,
    find_root,
    read_text,
    subdirs,
)

EMOTIONS = {
    "neutral": "neu",
    "happy": "hap",
    "angry": "ang",
    "sad": "sad",
    "surprise": "sur",
}
OFFICIAL_SPLITS = {"train": "train", "evaluation": "dev", "test": "test"}
# From the corpus README.
GENDERS = dict(
    zip(
        [f"{i:04d}" for i in range(1, 21)],
        "FFFMMMFMFM" + "MMMMFFFFFM",
    )
)
EXPECTED = (
    "speaker folders 0001 ... 0020, each with Neutral/ Happy/ Angry/ Sad/ "
    "Surprise/ holding <spk>_<6 digits>.wav (directly or in train/ "
    "evaluation/ test/)"
)


def _looks_like_esd(folder):
    for spk in subdirs(folder, r"\d{4}"):
        names = {d.lower() for d in subdirs(os.path.join(folder, spk))}
        if names & set(EMOTIONS):
            return True
    return False


def _language(spk):
    number = int(spk)
    if 1 <= number <= 10:
        return "zh"
    if 11 <= number <= 20:
        return "en"
    return ""


def read_transcripts(path):
    """Utterance ID -> text from an ESD ``<spk>.txt`` (tab-separated); none
    when the file is missing.

    Example
    -------
    >>> CORPUS.example("ID", "text")
    ('0011_000351', 'The nine the eggs, I keep.')
    """
    if not os.path.isfile(path):
        return {}
    texts = {}
    for line in read_text(path).splitlines():
        fields = line.split("\t")
        if len(fields) >= 2 and re.fullmatch(r"\d{4}_\d{6}", fields[0].strip()):
            texts[fields[0].strip()] = fields[1].strip()
    return texts


def parse_esd(data_folder, problems):
    """Rows (without durations) for every ESD utterance under the root
    (``<spk>/<Emotion>/[<official split>/]<spk>_<6 digits>.wav``), texts from
    ``<spk>/<spk>.txt``: the ``parse`` of :data:`CORPUS`.

    Example
    -------
    >>> CORPUS.example("spk_id", "emo", "gender", "official_split", "text")
    ('0011', 'ang', 'M', 'test', 'The nine the eggs, I keep.')
    """
    root = find_root(data_folder, _looks_like_esd, EXPECTED)
    rows = []
    for spk in subdirs(root, r"\d{4}"):
        spk_dir = os.path.join(root, spk)
        texts = read_transcripts(os.path.join(spk_dir, f"{spk}.txt"))
        name_re = re.compile(rf"{spk}_\d{{6}}\.wav")
        for emo_dir in subdirs(spk_dir):
            emo = EMOTIONS.get(emo_dir.lower())
            if emo is None:
                problems(
                    "unexpected folder",
                    f"{os.path.join(spk_dir, emo_dir)}: unexpected emotion "
                    "folder; expected Neutral, Happy, Angry, Sad or Surprise",
                )
                continue
            folder = os.path.join(spk_dir, emo_dir)
            places = [(folder, "")]
            for sub in subdirs(folder):
                if sub.lower() not in OFFICIAL_SPLITS:
                    problems(
                        "unexpected folder",
                        f"{os.path.join(folder, sub)}: unexpected folder; "
                        "expected train/, evaluation/ or test/",
                    )
                    continue
                places.append((os.path.join(folder, sub), sub.lower()))
            for place, official in places:
                expected = f"{spk}_<6 digits>.wav"
                found = audio_files(
                    place, name_re.fullmatch, expected, problems
                )
                for path, uid, _ in found:
                    rows.append(
                        {
                            "ID": uid,
                            "wav": path,
                            "spk_id": spk,
                            "emo": emo,
                            "emo_raw": emo_dir,
                            "gender": GENDERS.get(spk, ""),
                            "lang": _language(spk),
                            "text": texts.get(uid, ""),
                            "official_split": official,
                        }
                    )
    if not any(row["official_split"] for row in rows):
        for row in rows:
            del row["official_split"]
    return rows


def _official(row):
    """ESD's own split of a row (its sub-folder), for ``split="official"``."""
    if not row.get("official_split"):
        raise CorpusError(
            f"{row['wav']}: split='official' needs the train/ evaluation/ "
            "test/ sub-folders, and this file is outside them"
        )
    return OFFICIAL_SPLITS[row["official_split"]]


CORPUS = Corpus(
    "esd",
    parse_esd,
    summary="Prepare ESD: manifest, speaker folds, splits and emotional "
    "trials.",
    root="The ESD root, holding ``0001`` ... ``0020``.",
    columns="``emo_raw`` keeps the folder name, ``official_split`` the "
    "sub-folder when the corpus has them",
    licence="research use only (the corpus README)",
    options=(
        official_split(
            '``"speakers"``: train/dev/test by speakers (speaker-independent); '
            '``"official"``: ESD\'s own per-utterance split (train, evaluation '
            "-> dev, test), which shares speakers across splits and is "
            "flagged as such in ``esd_folds.json``."
        ),
    ),
    official=_official,
    sample={
        "0011/Angry/test/0011_000351.wav": "",
        "0011/0011.txt": "0011_000351\tThe nine the eggs, I keep.\tAngry\n",
    },
)
prepare_esd = CORPUS.preparer()
