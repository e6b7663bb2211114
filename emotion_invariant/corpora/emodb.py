"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., 2005).

10 actors, 10 German sentences, 7 emotions, as distributed:
``wav/<speaker><text><emotion letter><version>.wav`` (e.g. ``03a01Fa.wav``).
"""

import os
import re

from emotion_invariant.corpora.base import Corpus
from emotion_invariant.corpora.files import audio_files, find_root, listdir

EMOTIONS = {
    "W": "ang",  # Wut
    "L": "bor",  # Langeweile
    "E": "dis",  # Ekel
    "A": "fea",  # Angst
    "F": "hap",  # Freude
    "T": "sad",  # Trauer
    "N": "neu",
}
GENDERS = {
    **{spk: "M" for spk in ("03", "10", "11", "12", "15")},
    **{spk: "F" for spk in ("08", "09", "13", "14", "16")},
}
SENTENCES = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem "
    "Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder "
    "runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und "
    "habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
NAME = re.compile(r"(\d\d)([ab]\d\d)([WLEAFTN])([a-z])\.wav")
EXPECTED = "a wav/ folder of files such as wav/03a01Fa.wav"


def _looks_like_emodb(folder):
    audio = os.path.join(folder, "wav")
    return os.path.isdir(audio) and any(
        n.lower().endswith(".wav") for n in listdir(audio)
    )


def parse_emodb(data_folder, problems):
    """Rows (without durations) for every EmoDB utterance under the root
    (``wav/<speaker><text><emotion><version>.wav``): the ``parse`` of
    :data:`CORPUS`.

    Example
    -------
    >>> CORPUS.example("spk_id", "emo", "emo_raw", "gender", "text")
    ('03', 'hap', 'F', 'M', 'Der Lappen liegt auf dem Eisschrank.')
    """
    root = find_root(data_folder, _looks_like_emodb, EXPECTED)
    audio = os.path.join(root, "wav")
    expected = (
        f"<speaker 2 digits><text a01..b10><emotion {''.join(EMOTIONS)}>"
        "<version a-z>.wav, e.g. 03a01Fa.wav"
    )
    rows = []
    for path, uid, match in audio_files(
        audio, NAME.fullmatch, expected, problems
    ):
        spk, text, letter, _ = match.groups()
        rows.append(
            {
                "ID": uid,
                "wav": path,
                "spk_id": spk,
                "emo": EMOTIONS[letter],
                "emo_raw": letter,
                "gender": GENDERS.get(spk, ""),
                "lang": "de",
                "text": SENTENCES.get(text, ""),
            }
        )
    return rows


CORPUS = Corpus(
    "emodb",
    parse_emodb,
    summary="Prepare EmoDB: manifest, speaker folds, splits and emotional "
    "trials.",
    root="The EmoDB root, holding ``wav/``.",
    columns="``emo_raw`` keeps the German emotion letter",
    licence="free download from the authors; read the terms on the download "
    "page",
    docs={
        "test_fraction, dev_fraction": (
            "float",
            "Speaker fractions of test and dev (at least 2 and 1 speakers).",
        )
    },
    sample={"wav/03a01Fa.wav": ""},
)
prepare_emodb = CORPUS.preparer()
