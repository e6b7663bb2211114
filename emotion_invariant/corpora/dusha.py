"""Dusha, a large Russian speech emotion corpus (Kondratenko et al., 2022),
crowd part.

As distributed: ``crowd_train/`` and ``crowd_test/``, each with a raw
annotation file ``raw_<part>.jsonl`` (or ``.tsv``; one line per annotator
vote: ``hash_id, audio_path, annotator_emo, golden_emo, speaker_text,
speaker_emo, source_id, ...``) and ``wavs/<hash_id>.wav``. Labels are
angry, sad, neutral, positive (-> ``hap``) and other. The speaker is
``source_id``; files without one get a per-file pseudo-speaker, flagged.
"""

import csv
import json
import os
from collections import Counter, defaultdict

from emotion_invariant.corpora.base import Corpus, Option, official_split
from emotion_invariant.corpora.files import CorpusError, find_root
from emotion_invariant.corpora.steps import UNKNOWN_SPEAKER

PARTS = ("crowd_train", "crowd_test")
OFFICIAL_SPLITS = {"crowd_train": "train", "crowd_test": "test"}
EMOTIONS = {
    "angry": "ang",
    "sad": "sad",
    "neutral": "neu",
    "positive": "hap",
    "other": "oth",
}
EXPECTED = (
    "crowd_train/ and/or crowd_test/, each with raw_<part>.jsonl (or .tsv) "
    "and wavs/"
)


def _looks_like_dusha(folder):
    return any(os.path.isdir(os.path.join(folder, p)) for p in PARTS)


def _field(vote, key):
    """A vote's field as a stripped string (empty when absent or null)."""
    value = vote.get(key)
    value = "" if value is None else str(value).strip()
    # Table exports write missing values as words.
    return "" if value.lower() in ("nan", "none", "null") else value


def read_votes(path, problems):
    """Annotation lines of a raw Dusha file (JSON lines or TSV) as dicts.

    Arguments
    ---------
    path : str
        ``raw_<part>.jsonl`` or ``raw_<part>.tsv``.
    problems : emotion_invariant.corpora.files.Problems
        Where malformed lines go.

    Returns
    -------
    list of tuple
        ``(line number, dict)`` for every well-formed line.

    Example
    -------
    >>> import tempfile, os
    >>> from emotion_invariant.corpora.files import Problems
    >>> path = os.path.join(tempfile.mkdtemp(), "raw_crowd_test.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"hash_id": "h1", "audio_path": "wavs/h1.wav", '
    ...                 '"annotator_emo": "sad"}\\n')
    >>> read_votes(path, Problems())[0][1]["annotator_emo"]
    'sad'
    """
    votes = []
    with open(path, encoding="utf-8", newline="") as f:
        if path.endswith(".tsv"):
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            lines = ((i, row) for i, row in enumerate(reader, 2))
        else:
            lines = enumerate(f, 1)
        for line_no, line in lines:
            if isinstance(line, str):
                if not line.strip():
                    continue
                try:
                    line = json.loads(line)
                except json.JSONDecodeError as err:
                    problems(
                        "bad label line",
                        f"{path} line {line_no}: not JSON ({err})",
                    )
                    continue
            if not isinstance(line, dict) or not all(
                _field(line, k) for k in ("hash_id", "audio_path")
            ):
                problems(
                    "bad label line",
                    f"{path} line {line_no}: expected hash_id and audio_path",
                )
                continue
            votes.append((line_no, line))
    return votes


def _label(votes, source):
    """The utterance's raw label, or ``None`` when there is none."""
    if source == "speaker":
        labels = [_field(v, "speaker_emo") for v in votes]
        return next((x for x in labels if x), None)
    golden = [_field(v, "golden_emo") for v in votes]
    golden = [x for x in golden if x]
    if golden:
        return golden[0]
    counts = Counter(_field(v, "annotator_emo") for v in votes).most_common()
    counts = [(label, n) for label, n in counts if label]
    if not counts or (len(counts) > 1 and counts[0][1] == counts[1][1]):
        return None
    return counts[0][0]


def parse_dusha(data_folder, problems, label="annotators"):
    """Rows (without durations) for every labelled Dusha crowd recording:
    the ``parse`` of :data:`CORPUS`.

    Arguments
    ---------
    data_folder, problems
        As every ``parse`` takes them; bad lines, unknown labels and
        missing audio go to ``problems``.
    label : str
        ``"annotators"``: the golden label when the recording has one,
        else the majority of annotator votes (ties left out);
        ``"speaker"``: the emotion the speaker was asked to act.

    Example
    -------
    >>> CORPUS.example("spk_id", "emo", "emo_raw")
    ('s9', 'hap', 'positive')
    >>> CORPUS.example("emo", label="speaker")
    ('sad',)
    """
    root = find_root(data_folder, _looks_like_dusha, EXPECTED)
    rows = []
    for part in PARTS:
        folder = os.path.join(root, part)
        if not os.path.isdir(folder):
            continue
        stem = os.path.join(folder, f"raw_{part}")
        path = next(
            (
                stem + ext
                for ext in (".jsonl", ".tsv")
                if os.path.isfile(stem + ext)
            ),
            None,
        )
        if path is None:
            raise CorpusError(
                f"{folder}: no annotation file; expected raw_{part}.jsonl "
                f"or raw_{part}.tsv"
            )
        by_id = defaultdict(list)
        first_line = {}
        for line_no, vote in read_votes(path, problems):
            hash_id = _field(vote, "hash_id")
            by_id[hash_id].append(vote)
            first_line.setdefault(hash_id, line_no)
        for hash_id, votes in by_id.items():
            where = f"{path} line {first_line[hash_id]} (hash_id {hash_id})"
            raw = _label(votes, label)
            if raw is None:
                continue
            emo = EMOTIONS.get(raw.lower())
            if emo is None:
                problems(
                    "unknown label",
                    f"{where}: unknown emotion {raw!r}; expected one of "
                    + ", ".join(EMOTIONS),
                )
                continue
            audio_path = _field(votes[0], "audio_path")
            wav = os.path.join(folder, audio_path)
            if not os.path.isfile(wav):
                problems(
                    "missing audio",
                    f"{where} names {audio_path}, but {wav} does not exist",
                )
                continue
            sources = [_field(v, "source_id") for v in votes]
            source = next((x for x in sources if x), "")
            rows.append(
                {
                    "ID": hash_id,
                    "wav": wav,
                    "spk_id": source or UNKNOWN_SPEAKER + hash_id,
                    "emo": emo,
                    "emo_raw": raw,
                    "lang": "ru",
                    "text": _field(votes[0], "speaker_text"),
                    "official_split": part,
                }
            )
    return rows


CORPUS = Corpus(
    "dusha",
    parse_dusha,
    summary="Prepare Dusha (crowd): manifest, speaker folds, splits, trials.",
    root="The Dusha root, holding ``crowd_train/`` and/or ``crowd_test/``.",
    columns="``emo_raw`` keeps the corpus label, e.g. ``positive`` for "
    "``hap``; ``official_split`` the part",
    licence="SberDevices' licence (``license/`` in the golos repository)",
    notes="Recordings without ``source_id`` get the speaker "
    "``nospk-<hash_id>``, a warning, and no fold, split or trial.",
    options=(
        Option(
            "label",
            "annotators",
            "str",
            '``"annotators"`` (golden label, else majority vote) or '
            '``"speaker"`` (the emotion the speaker was asked to act).',
            ("annotators", "speaker"),
            parse=True,
        ),
        official_split(
            '``"speakers"`` (train/dev/test by speakers) or ``"official"`` '
            "(crowd_train -> train, crowd_test -> test)."
        ),
    ),
    docs={
        "skip_bad": (
            "bool",
            "Skip (and count) bad lines, unknown labels, missing and "
            "unreadable audio instead of stopping at the first one.",
        )
    },
    official=lambda row: OFFICIAL_SPLITS[row["official_split"]],
    sample={
        "crowd_test/wavs/h1.wav": "",
        "crowd_test/raw_crowd_test.jsonl": "\n".join(
            json.dumps(
                {
                    "hash_id": "h1",
                    "audio_path": "wavs/h1.wav",
                    "annotator_emo": emo,
                    "speaker_emo": "sad",
                    "source_id": "s9",
                }
            )
            for emo in ("positive", "positive", "sad")
        ),
    },
)
prepare_dusha = CORPUS.preparer()
