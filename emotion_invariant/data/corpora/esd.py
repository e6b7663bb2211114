"""ESD, the Emotional Speech Dataset (Zhou, Sisman, Liu and Li, 2021).

20 speakers (Mandarin 0001-0010, English 0011-0020), 5 emotions, as
distributed: ``<spk>/<Emotion>/[train|evaluation|test/]<spk>_<6 digits>.wav``
with transcripts in ``<spk>/<spk>.txt``. The official split (per utterance,
speakers shared) is kept in ``official_split`` and used as ``split`` on
request.
"""

import os
import re

from emotion_invariant.data.corpora import (
    CorpusError,
    find_root,
    listdir,
    preparer,
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
    """Utterance ID -> text from an ESD ``<spk>.txt`` (tab-separated).

    Arguments
    ---------
    path : str
        The transcript file; a missing file gives no texts.

    Returns
    -------
    dict

    Example
    -------
    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "0011.txt")
    >>> with open(path, "w") as f:
    ...     _ = f.write("0011_000001\\tThe nine the eggs, I keep.\\tNeutral\\n")
    >>> read_transcripts(path)
    {'0011_000001': 'The nine the eggs, I keep.'}
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
    """Rows (without durations) for every ESD utterance under the root.

    Arguments
    ---------
    data_folder : str
        The ESD root (the folder holding ``0001`` ... ``0020``).
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
    >>> os.makedirs(os.path.join(root, "0011", "Angry", "test"))
    >>> open(os.path.join(root, "0011", "Angry", "test", "0011_000351.wav"),
    ...      "w").close()
    >>> row = parse_esd(root, Problems())[0]
    >>> row["spk_id"], row["emo"], row["gender"], row["official_split"]
    ('0011', 'ang', 'M', 'test')
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
                for name in listdir(place):
                    path = os.path.join(place, name)
                    if os.path.isdir(path) or not name.lower().endswith(".wav"):
                        continue
                    if not name_re.fullmatch(name):
                        problems(
                            "unexpected file name",
                            f"{path}: unexpected file name; expected "
                            f"{spk}_<6 digits>.wav",
                        )
                        continue
                    uid = name[: -len(".wav")]
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


def _official(rows):
    """Use the official per-utterance split as ``split``."""
    for row in rows:
        if not row.get("official_split"):
            raise CorpusError(
                f"{row['wav']}: split='official' needs the train/ evaluation/ "
                "test/ sub-folders, and this file is outside them"
            )
        row["split"] = OFFICIAL_SPLITS[row["official_split"]]
    return rows


@preparer("esd")
def prepare_esd(
    data_folder,
    save_folder,
    split="speakers",
    seed=0,
    held_out=4,
    test_fraction=0.2,
    dev_fraction=0.1,
    max_per_condition=None,
    skip_bad=False,
    jobs=1,
):
    """Prepare ESD: manifest, speaker folds, splits and emotional trials.

    Writes ``esd.csv`` (``emo_raw`` keeps the folder name, ``official_split``
    the sub-folder when the corpus has them), ``esd_folds.json``,
    ``esd_splits.json``, ``esd_trials.txt`` and per-split manifests into
    ``save_folder``; skips the work when a previous run with the same
    options finished.

    Arguments
    ---------
    data_folder : str
        The ESD root, holding ``0001`` ... ``0020``.
    {save_folder}
    split : str
        ``"speakers"``: train/dev/test by speakers (speaker-independent);
        ``"official"``: ESD's own per-utterance split (train, evaluation
        -> dev, test), which shares speakers across splits and is flagged
        as such in ``esd_folds.json``.
    {seed}
    {held_out}
    test_fraction, dev_fraction : float
        Speaker fractions of test and dev with ``split="speakers"``.
    {max_per_condition}
    {skip_bad}
    {jobs}
    """
    if split not in ("speakers", "official"):
        raise ValueError(
            f"split must be 'speakers' or 'official', got {split!r}"
        )

    def parse(problems):
        rows = parse_esd(data_folder, problems)
        return _official(rows) if split == "official" else rows

    return {"parse": parse, "presplit": split == "official"}
