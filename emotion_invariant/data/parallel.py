"""Parallel sampling: for an utterance, the same speaker in another emotion.

This is the pairing behind emotion-invariant speaker learning (Tian, Hu and
Xu, 2025): an anchor utterance is paired with a same-speaker utterance in a
different emotion, falling back to any other utterance of the speaker (and
finally to the anchor itself) when the corpus has nothing better.
"""

import logging
import random
from collections import defaultdict

from emotion_invariant.data.manifest import ManifestError, validate_rows
from emotion_invariant.seeding import as_rng

logger = logging.getLogger(__name__)

KINDS = ("emotion", "speaker", "self")


class ParallelIndex:
    """Find, for any utterance, a same-speaker partner in another emotion.

    The partner's emotion is drawn uniformly among the speaker's other
    emotions, then the partner uniformly among that emotion's utterances,
    so frequent emotions do not crowd out rare ones. A speaker recorded in
    one emotion only gives another of their utterances (kind
    ``"speaker"``); a speaker with a single utterance gives the utterance
    itself (kind ``"self"``).

    Arguments
    ---------
    rows : list of dict
        Manifest rows with at least ``ID, duration, wav, spk_id, emo``; an
        optional ``text`` column enables ``prefer_same_text``.
    seed : int
        Seeds the generator used when :meth:`partner` gets no ``rng``.
    emotions : collection of str, optional
        Emotions a partner may have (default: any). A speaker with no other
        utterance in these emotions falls back to kind ``"speaker"``.
    prefer_same_text : bool
        In a parallel corpus (same sentences read in several emotions),
        choose a partner reading the same text whenever the chosen emotion
        has one, so the pair differs in emotion only.
    source : str
        Where the rows came from, for error messages.

    Attributes
    ----------
    counts : dict
        How many partners of each kind (``"emotion"``, ``"speaker"``,
        ``"self"``) have been drawn so far.
    single_emotion_speakers : list of str
        Speakers with utterances in one emotion only, sorted.

    Example
    -------
    >>> rows = [
    ...     {"ID": "a1", "spk_id": "A", "emo": "neu"},
    ...     {"ID": "a2", "spk_id": "A", "emo": "ang"},
    ...     {"ID": "b1", "spk_id": "B", "emo": "neu"},
    ...     {"ID": "b2", "spk_id": "B", "emo": "neu"},
    ...     {"ID": "c1", "spk_id": "C", "emo": "sad"},
    ... ]
    >>> rows = [dict(r, wav=r["ID"] + ".wav", duration="1.0") for r in rows]
    >>> index = ParallelIndex(rows)
    >>> row, kind = index.partner("a1", random.Random(0))
    >>> row["ID"], kind
    ('a2', 'emotion')
    >>> index.partner("b1")[0]["ID"], index.partner("c1")[1]
    ('b2', 'self')
    >>> index.counts
    {'emotion': 1, 'speaker': 1, 'self': 1}
    >>> index.single_emotion_speakers
    ['B', 'C']
    """

    def __init__(
        self,
        rows,
        seed=0,
        emotions=None,
        prefer_same_text=False,
        source="<rows>",
    ):
        rows = list(rows)
        if not rows:
            raise ManifestError(f"{source}: no rows to build a parallel index")
        validate_rows(rows, source)
        self.rows = {row["ID"]: row for row in rows}
        self.emotions = None if emotions is None else frozenset(emotions)
        self.prefer_same_text = prefer_same_text
        self.rng = random.Random(seed)
        self.counts = dict.fromkeys(KINDS, 0)
        # speaker -> emotion -> IDs, in manifest order so draws are stable;
        # plain dicts keep the index picklable for DataLoader workers
        by_speaker = defaultdict(lambda: defaultdict(list))
        for row in rows:
            by_speaker[row["spk_id"]][row["emo"]].append(row["ID"])
        self._by_speaker = {
            spk: dict(emotions) for spk, emotions in by_speaker.items()
        }
        self.single_emotion_speakers = sorted(
            spk for spk, emos in self._by_speaker.items() if len(emos) == 1
        )

    def __len__(self):
        return len(self.rows)

    def partner(self, row_id, rng=None, emotions=None):
        """Draw a same-speaker partner for one utterance.

        Arguments
        ---------
        row_id : str
            ID of the anchor utterance.
        rng : None, int, random.Random or numpy.random.Generator
            Source of randomness (see :func:`as_rng`); ``None`` uses the
            index's own seeded generator.
        emotions : collection of str, optional
            Overrides the index's ``emotions`` for this draw.

        Returns
        -------
        partner_row : dict
            The partner's manifest row.
        kind : str
            ``"emotion"`` (same speaker, other emotion), ``"speaker"``
            (same speaker, no other emotion allowed or available) or
            ``"self"`` (the speaker has no other utterance).
        """
        anchor = self.rows.get(row_id)
        if anchor is None:
            raise ManifestError(
                f"utterance ID {row_id!r} is not in the parallel index "
                f"({len(self.rows)} utterances)"
            )
        rng = self.rng if rng is None else as_rng(rng)
        allowed = self.emotions if emotions is None else frozenset(emotions)
        by_emotion = self._by_speaker[anchor["spk_id"]]
        other_emotions = [
            emo
            for emo in by_emotion
            if emo != anchor["emo"] and (allowed is None or emo in allowed)
        ]
        if other_emotions:
            emo = other_emotions[rng.randrange(len(other_emotions))]
            kind, candidates = "emotion", by_emotion[emo]
        else:
            kind = "speaker"
            candidates = [
                uid
                for ids in by_emotion.values()
                for uid in ids
                if uid != row_id
            ]
            if not candidates:
                kind, candidates = "self", [row_id]
        if self.prefer_same_text and kind != "self":
            text = anchor.get("text")
            same = [
                uid
                for uid in candidates
                if text and self.rows[uid].get("text") == text
            ]
            candidates = same or candidates
        self.counts[kind] += 1
        return self.rows[candidates[rng.randrange(len(candidates))]], kind


def check_copypaste(index, rows, source):
    """Warn with the share of CopyPaste views that fall back to plain
    same-speaker pairs (speakers with one emotion); fail when all do."""
    single = set(index.single_emotion_speakers)
    if not single:
        return
    affected = sum(row["spk_id"] in single for row in rows)
    if affected == len(rows):
        raise ManifestError(
            f"{source}: every training speaker has one emotion only, so no "
            "emotion CopyPaste view is possible: set copypaste_prob: 0, or "
            "train on speakers with several emotions"
        )
    logger.warning(
        "%s: %d training speaker(s) have one emotion only: %.1f%% of the "
        "views (%d of %d utterances) are plain same-speaker pairs, not "
        "emotion CopyPaste",
        source,
        len(single),
        100 * affected / len(rows),
        affected,
        len(rows),
    )
