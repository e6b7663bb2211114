"""EmoDB, the Berlin Database of Emotional Speech (Burkhardt et al., 2005).

10 actors, 10 German sentences, 7 emotions, as distributed:
``wav/<speaker><text><emotion letter><version>.wav`` (e.g. ``03a01Fa.wav``).
"""

import os
import re

from emotion_invariant.data.corpora import find_root, listdir, preparer

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
    """Rows (without durations) for every EmoDB utterance under the root.

    Arguments
    ---------
    data_folder : str
        The EmoDB root (holding ``wav/``).
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
    >>> os.mkdir(os.path.join(root, "wav"))
    >>> open(os.path.join(root, "wav", "03a01Fa.wav"), "w").close()
    >>> row = parse_emodb(root, Problems())[0]
    >>> row["spk_id"], row["emo"], row["emo_raw"], row["gender"]
    ('03', 'hap', 'F', 'M')
    """
    root = find_root(data_folder, _looks_like_emodb, EXPECTED)
    audio = os.path.join(root, "wav")
    rows = []
    for name in listdir(audio):
        path = os.path.join(audio, name)
        if os.path.isdir(path) or not name.lower().endswith(".wav"):
            continue
        match = NAME.fullmatch(name)
        if match is None:
            problems(
                "unexpected file name",
                f"{path}: unexpected file name; expected <speaker 2 digits>"
                f"<text a01..b10><emotion {''.join(EMOTIONS)}><version a-z>"
                ".wav, e.g. 03a01Fa.wav",
            )
            continue
        spk, text, letter, _ = match.groups()
        rows.append(
            {
                "ID": name[: -len(".wav")],
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


@preparer("emodb")
def prepare_emodb(
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
    """Prepare EmoDB: manifest, speaker folds, splits and emotional trials.

    Writes ``emodb.csv`` (``emo_raw`` keeps the German emotion letter),
    ``emodb_folds.json``, ``emodb_splits.json``, ``emodb_trials.txt`` and
    per-split manifests into ``save_folder``; skips the work when a
    previous run with the same options finished.

    Arguments
    ---------
    data_folder : str
        The EmoDB root, holding ``wav/``.
    {save_folder}
    {seed}
    {held_out}
    test_fraction, dev_fraction : float
        Speaker fractions of test and dev (at least 2 and 1 speakers).
    {max_per_condition}
    {skip_bad}
    {jobs}
    """
    return {"parse": lambda problems: parse_emodb(data_folder, problems)}
