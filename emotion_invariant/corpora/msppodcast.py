"""MSP-Podcast, natural emotional speech from podcasts (Lotfian and Busso,
2019).

As distributed: ``Audios/<FileName>.wav`` and
``Labels/labels_consensus.csv`` (``FileName, EmoClass, SpkrID, Gender,
Split_Set``, EmoClass letters A S H U F D C N O X), or ``.json`` in newer
releases; older releases name speakers and partitions in ``Speaker_ids.txt``
and ``Partitions.txt`` instead.
"""

import json
import logging
import os

from emotion_invariant.corpora.base import Corpus, official_split
from emotion_invariant.corpora.files import (
    CorpusError,
    find_root,
    read_table,
    read_text,
)
from emotion_invariant.corpora.steps import UNKNOWN_SPEAKER

EMOTIONS = {
    "A": "ang",
    "S": "sad",
    "H": "hap",
    "U": "sur",
    "F": "fea",
    "D": "dis",
    "C": "oth",  # contempt has no class of its own in the shared vocabulary
    "N": "neu",
    "O": "oth",
}
NO_AGREEMENT = "X"
LABEL_FILES = (
    "labels_consensus.csv",
    "labels_concensus.csv",
    "labels_consensus.json",
)
EXPECTED = "Audios/ and Labels/labels_consensus.csv (or .json)"

logger = logging.getLogger(__name__)


def _looks_like_msp(folder):
    return all(
        os.path.isdir(os.path.join(folder, d)) for d in ("Audios", "Labels")
    )


def _speaker(value):
    """Normalised speaker id: ``Speaker_0127`` and ``127`` are the same."""
    value = str(value).strip()
    for prefix in ("Speaker_", "Speaker "):
        if value.startswith(prefix):
            value = value[len(prefix) :].strip()
    return str(int(value)) if value.isdigit() else value


def _gender(value):
    return {"male": "M", "female": "F"}.get(str(value).strip().lower(), "")


def read_labels(path):
    """File name -> label fields from a consensus label file (CSV or JSON).

    Arguments
    ---------
    path : str
        ``labels_consensus.csv`` (or its older spelling) or ``.json``.

    Returns
    -------
    dict
        ``FileName`` -> dict with at least ``EmoClass`` and whatever of
        ``SpkrID, Gender, Split_Set`` the file has.

    Example
    -------
    >>> CORPUS.example("spk_id", "gender")
    ('127', 'F')
    """
    if path.endswith(".json"):
        try:
            with open(path, encoding="utf-8") as f:
                labels = json.load(f)
        except (OSError, json.JSONDecodeError) as err:
            raise CorpusError(f"{path}: cannot read labels: {err}") from err
        if not isinstance(labels, dict) or not all(
            isinstance(v, dict) and "EmoClass" in v for v in labels.values()
        ):
            raise CorpusError(
                f"{path}: expected an object mapping file names to objects "
                "with EmoClass"
            )
        return {k: {f: str(v) for f, v in d.items()} for k, d in labels.items()}
    rows = read_table(path, ("FileName", "EmoClass"))
    return {row["FileName"]: row for row in rows}


def read_pairs(path):
    """``key; value`` lines of an older MSP-Podcast list file, as pairs.

    Example
    -------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile("w", suffix=".txt") as f:
    ...     _ = f.write("Train; MSP-PODCAST_0001_0008.wav\\n")
    ...     f.flush()
    ...     read_pairs(f.name)
    [('Train', 'MSP-PODCAST_0001_0008.wav')]
    """
    pairs = []
    for line in read_text(path).splitlines():
        key, sep, value = line.partition(";")
        if sep and key.strip() and value.strip():
            pairs.append((key.strip(), value.strip()))
    return pairs


def _find(root, name):
    for folder in (root, os.path.join(root, "Labels")):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


def _old_speakers(root, labels):
    """Fill SpkrID/Gender from ``Speaker_ids.txt`` (older releases)."""
    path = _find(root, "Speaker_ids.txt")
    if path is None:
        raise CorpusError(
            f"{root}: the label file has no SpkrID column and there is no "
            "Speaker_ids.txt (in the root or Labels/); speakers are needed "
            "for folds and verification"
        )
    speaker_of, gender_of = {}, {}
    for key, value in read_pairs(path):
        if key.lower().endswith(".wav"):
            speaker_of[key] = _speaker(value)
        elif key.startswith("Speaker"):
            gender_of[_speaker(key)] = value
    for name, fields in labels.items():
        spk = speaker_of.get(name, "")
        fields["SpkrID"] = spk
        fields.setdefault("Gender", gender_of.get(spk, ""))


def _old_partitions(root, labels):
    """Fill Split_Set from ``Partitions.txt`` (older releases), if present."""
    path = _find(root, "Partitions.txt")
    if path is None:
        return
    part_of = {name: part for part, name in read_pairs(path)}
    for name, fields in labels.items():
        fields["Split_Set"] = part_of.get(name, "")


def parse_msppodcast(data_folder, problems):
    """Rows (without durations) for every labelled MSP-Podcast segment:
    the ``parse`` of :data:`CORPUS`.

    Segments without agreement (EmoClass ``X``) are left out and counted;
    unknown labels and missing audio go to ``problems``.

    Example
    -------
    >>> CORPUS.example("spk_id", "emo", "emo_raw", "gender", "official_split")
    ('127', 'oth', 'C', 'F', 'Test1')
    """
    root = find_root(data_folder, _looks_like_msp, EXPECTED)
    path = next(
        (
            os.path.join(root, "Labels", name)
            for name in LABEL_FILES
            if os.path.isfile(os.path.join(root, "Labels", name))
        ),
        None,
    )
    if path is None:
        raise CorpusError(
            f"{os.path.join(root, 'Labels')}: no label file; expected one of "
            + ", ".join(LABEL_FILES)
        )
    labels = read_labels(path)
    if not labels:
        raise CorpusError(f"{path}: no labelled segment")
    sample = next(iter(labels.values()))
    if "SpkrID" not in sample:
        _old_speakers(root, labels)
    if "Split_Set" not in sample:
        _old_partitions(root, labels)
    rows, no_agreement = [], 0
    for name, fields in labels.items():
        letter = fields.get("EmoClass", "").strip()
        if letter == NO_AGREEMENT:
            no_agreement += 1
            continue
        emo = EMOTIONS.get(letter)
        if emo is None:
            problems(
                "unknown label",
                f"{path} ({name}): unknown EmoClass {letter!r}; expected one "
                f"of {' '.join(EMOTIONS)} {NO_AGREEMENT}",
            )
            continue
        wav = os.path.join(root, "Audios", name)
        if not os.path.isfile(wav):
            problems(
                "missing audio",
                f"{path} names {name}, but {wav} does not exist",
            )
            continue
        uid = os.path.splitext(name)[0]
        spk = _speaker(fields.get("SpkrID", ""))
        if not spk or spk.lower() == "unknown":
            spk = UNKNOWN_SPEAKER + uid
        rows.append(
            {
                "ID": uid,
                "wav": wav,
                "spk_id": spk,
                "emo": emo,
                "emo_raw": letter,
                "gender": _gender(fields.get("Gender", "")),
                "lang": "en",
                "official_split": fields.get("Split_Set", "").strip(),
            }
        )
    if no_agreement:
        logger.info(
            "msppodcast: left out %d segment(s) without agreement (X)",
            no_agreement,
        )
    return rows


def _official(row):
    """MSP-Podcast's own split of a row (its Split_Set)."""
    split_set = row["official_split"]
    name = split_set.lower()
    if name == "train":
        return "train"
    if name in ("development", "dev", "validation"):
        return "dev"
    if name.startswith("test"):
        return "test"
    raise CorpusError(
        f"{row['wav']}: split='official' needs a Split_Set (Train, "
        f"Development, Test1...), got {split_set!r}"
    )


CORPUS = Corpus(
    "msppodcast",
    parse_msppodcast,
    summary="Prepare MSP-Podcast: manifest, speaker folds, splits and trials.",
    root="The MSP-Podcast root, holding ``Audios/`` and ``Labels/``.",
    columns="``emo_raw`` keeps the EmoClass letter, ``official_split`` the "
    "Split_Set",
    licence="academic licence agreement with UT Dallas (MSP lab); "
    "commercial licence separate",
    notes="Segments whose speaker is ``Unknown`` get the speaker "
    "``nospk-<ID>``, a warning, and no fold, speaker split or trial.",
    options=(
        official_split(
            '``"speakers"`` (train/dev/test by speakers) or ``"official"`` '
            "(Train, Development, Test1/2/3 -> train, dev, test)."
        ),
    ),
    docs={
        "skip_bad": (
            "bool",
            "Skip (and count) unknown labels, missing and unreadable audio "
            "instead of stopping at the first one.",
        )
    },
    official=_official,
    sample={
        "Audios/MSP-PODCAST_0001_0008.wav": "",
        "Labels/labels_consensus.csv": "FileName,EmoClass,SpkrID,Gender,"
        "Split_Set\nMSP-PODCAST_0001_0008.wav,C,127,Female,Test1\n",
    },
)
prepare_msppodcast = CORPUS.preparer()
