"""IEMOCAP, the interactive emotional dyadic motion capture database (Busso
et al., 2008).

5 sessions of one female and one male actor, as distributed:
``SessionN/dialog/EmoEvaluation/<dialog>.txt`` label lines such as
``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[...]``, audio in
``SessionN/sentences/wav/<dialog>/<utterance>.wav``. Folds leave one session
(two speakers) out, as the speaker-independent protocol requires.
"""

import os
import re

from emotion_invariant.corpora.base import Corpus, Option
from emotion_invariant.corpora.files import (
    CorpusError,
    find_root,
    listdir,
    read_text,
    subdirs,
)

SESSION_DIR = r"Session[1-5]"
LABEL_LINE = re.compile(r"\[\s*[\d.]+\s*-\s*[\d.]+\s*\]\s+(\S+)\s+(\S+)\s+\[.*")
UTTERANCE = re.compile(r"Ses(0[1-5])[FM]_(.+)_([FM])\d{3}")
TRANSCRIPT_LINE = re.compile(r"(\S+) \[[\d.]+-[\d.]+\]:\s*(.*)")
# IEMOCAP's labels are the shared vocabulary's, but frustrated (and other).
FOUR_CLASS = {emo: emo for emo in ("neu", "hap", "ang", "sad")}
ALL_CLASSES = {
    **FOUR_CLASS,
    **{emo: emo for emo in ("sur", "fea", "dis", "oth")},
    "fru": "oth",
}
EXPECTED = (
    "Session1/ ... Session5/, each with dialog/EmoEvaluation/*.txt and "
    "sentences/wav/<dialog>/<utterance>.wav"
)


def _looks_like_iemocap(folder):
    return bool(subdirs(folder, SESSION_DIR))


def speaker_of(utterance):
    """Speaker and gender of an utterance ID: session plus its speaker letter.

    The letter after ``SesNN`` names who wore the markers in the dialog;
    the speaker of the utterance is the last F/M before the index.

    Arguments
    ---------
    utterance : str
        E.g. ``Ses01F_impro01_M013``.

    Returns
    -------
    tuple of str or None
        ``(spk_id, gender)`` such as ``("Ses01M", "M")``, or ``None``
        for a name that is not an IEMOCAP utterance ID.

    Example
    -------
    >>> speaker_of("Ses01F_impro01_M013")
    ('Ses01M', 'M')
    >>> speaker_of("Ses05M_script01_1b_F003")
    ('Ses05F', 'F')
    >>> speaker_of("impro01_M013") is None
    True
    """
    match = UTTERANCE.fullmatch(utterance)
    if match is None:
        return None
    session, _, gender = match.groups()
    return f"Ses{session}{gender}", gender


def read_transcripts(folder):
    """Utterance -> text from a session's ``dialog/transcriptions/*.txt``.

    Example
    -------
    >>> import tempfile, os
    >>> d = tempfile.mkdtemp()
    >>> line = "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.\\n"
    >>> with open(os.path.join(d, "Ses01F_impro01.txt"), "w") as f:
    ...     _ = f.write(line)
    >>> read_transcripts(d)
    {'Ses01F_impro01_F000': 'Excuse me.'}
    """
    texts = {}
    if not os.path.isdir(folder):
        return texts
    for name in listdir(folder):
        if not name.endswith(".txt"):
            continue
        for line in read_text(os.path.join(folder, name)).splitlines():
            match = TRANSCRIPT_LINE.fullmatch(line.strip())
            if match:
                texts[match[1]] = match[2].strip()
    return texts


def parse_iemocap(data_folder, problems, four_class=True, merge_excited=True):
    """Rows (without durations) for every labelled IEMOCAP utterance: the
    ``parse`` of :data:`CORPUS`.

    Arguments
    ---------
    data_folder, problems
        As every ``parse`` takes them; bad label lines and missing audio
        go to ``problems``.
    four_class : bool
        Keep only neutral, happy, angry and sad (plus excited when merged);
        otherwise also surprise, fear, disgust, and frustrated/other as
        ``oth``. Utterances without a majority label (``xxx``) are never kept.
    merge_excited : bool
        Count excited (``exc``) as happy; otherwise it is left out (four
        classes) or ``oth`` (all classes).

    Example
    -------
    >>> CORPUS.example("spk_id", "emo", "emo_raw")
    ('Ses01M', 'hap', 'exc')
    >>> CORPUS.example("emo", merge_excited=False, four_class=False)
    ('oth',)
    """
    root = find_root(data_folder, _looks_like_iemocap, EXPECTED)
    mapping = dict(FOUR_CLASS if four_class else ALL_CLASSES)
    if merge_excited:
        mapping["exc"] = "hap"
    elif not four_class:
        mapping["exc"] = "oth"
    rows = []
    for session in subdirs(root, SESSION_DIR):
        session_dir = os.path.join(root, session)
        labels = os.path.join(session_dir, "dialog", "EmoEvaluation")
        if not os.path.isdir(labels):
            raise CorpusError(
                f"{labels}: no such folder; every IEMOCAP session holds "
                "dialog/EmoEvaluation/<dialog>.txt label files"
            )
        texts = read_transcripts(
            os.path.join(session_dir, "dialog", "transcriptions")
        )
        number = session[-1]
        label_files = [n for n in listdir(labels) if n.endswith(".txt")]
        if not label_files:
            raise CorpusError(f"{labels}: no label file (<dialog>.txt) there")
        for label_file in label_files:
            label_path = os.path.join(labels, label_file)
            lines = read_text(label_path).splitlines()
            for line_no, line in enumerate(lines, 1):
                if not line.startswith("["):
                    continue
                where = f"{label_path} line {line_no}"
                match = LABEL_LINE.fullmatch(line.strip())
                who = speaker_of(match[1]) if match else None
                if who is None:
                    problems(
                        "bad label line",
                        f"{where}: expected '[start - end]<TAB>SesNN?_<dialog>"
                        f"_<F|M>NNN<TAB><label><TAB>[v, a, d]', got {line!r}",
                    )
                    continue
                utt, label = match[1], match[2]
                if utt[3:5] != f"0{number}":
                    problems(
                        "bad label line",
                        f"{where}: {utt} belongs to another session than "
                        f"{session}",
                    )
                    continue
                emo = mapping.get(label)
                if emo is None:
                    continue
                dialog = utt.rsplit("_", 1)[0]
                wav = os.path.join(
                    session_dir, "sentences", "wav", dialog, utt + ".wav"
                )
                if not os.path.isfile(wav):
                    problems(
                        "missing audio",
                        f"{where} names {utt}, but {wav} does not exist",
                    )
                    continue
                spk, gender = who
                rows.append(
                    {
                        "ID": utt,
                        "wav": wav,
                        "spk_id": spk,
                        "emo": emo,
                        "emo_raw": label,
                        "gender": gender,
                        "lang": "en",
                        "text": texts.get(utt, ""),
                    }
                )
    return rows


def _sessions(options):
    """IEMOCAP's folds (its sessions) and splits (test and dev sessions)."""
    test_session, dev_session = options["test_session"], options["dev_session"]
    sessions = {test_session, dev_session}
    if not sessions <= {1, 2, 3, 4, 5} or test_session == dev_session:
        raise ValueError(
            "test_session and dev_session must be two different sessions in "
            f"1..5, got {test_session} and {dev_session}"
        )
    speakers = [f"Ses0{n}{g}" for n in range(1, 6) for g in "FM"]
    split = {test_session: "test", dev_session: "dev"}
    return {
        "fold_of": {spk: spk[4] for spk in speakers},
        "split_of": {s: split.get(int(s[4]), "train") for s in speakers},
    }


CORPUS = Corpus(
    "iemocap",
    parse_iemocap,
    summary="Prepare IEMOCAP: manifest, leave-one-session-out folds, trials.",
    root="The IEMOCAP root, holding ``Session1`` ... ``Session5``.",
    columns="``emo_raw`` keeps the corpus label, ``wav`` is the already-cut "
    "sentence; fold = session",
    licence="release agreement with USC SAIL, research use",
    options=(
        Option(
            "four_class",
            True,
            "bool",
            "The usual 4-class set (neu hap ang sad); otherwise also sur, "
            "fea, dis, and frustrated/other as ``oth``.",
            parse=True,
        ),
        Option(
            "merge_excited",
            True,
            "bool",
            "Count excited as happy (the usual 4-class protocol).",
            parse=True,
        ),
        Option(
            "test_session",
            5,
            "int",
            "The session whose two speakers form the test split.",
        ),
        Option(
            "dev_session",
            4,
            "int",
            "The session whose two speakers form the dev split.",
        ),
    ),
    shared=("seed", "max_per_condition", "skip_bad", "jobs"),
    docs={
        "seed": ("int", "Seed of the trial list."),
        "skip_bad": (
            "bool",
            "Skip (and count) bad label lines, missing and unreadable audio "
            "instead of stopping at the first one.",
        ),
    },
    plan=_sessions,
    sample={
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_M013.wav": "",
        "Session1/dialog/EmoEvaluation/Ses01F_impro01.txt": "[6.2901 - 8.2357]"
        "\tSes01F_impro01_M013\texc\t[2.5, 3.0, 3.0]\n",
    },
)
prepare_iemocap = CORPUS.preparer()
