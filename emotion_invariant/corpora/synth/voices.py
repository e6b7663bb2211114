"""The voices of the demo corpus: pseudo-speakers and emotion styles.

Pseudo-speakers are espeak-ng voice variants (formant scalings, pitch base
and range, voice quality) on several English base voices, drawn apart from
each other. Each emotion is a prosody *and* voice-quality transform of a
speaker (F0 level and range, rate, loudness, vocal-tract scaling, spectral
tilt, breathiness, roughness) with per-utterance jitter, so emotion moves
the very cues a speaker encoder relies on.
"""

from collections import defaultdict

import numpy as np

BASE_VOICES = (
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-scotland",
    "en-us",
    "en-us-nyc",
    "en-029",
    "en",
)
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
)

# Emotion transforms, relative to the speaker's neutral voice. Values are
# multiplicative unless named *_db (decibels) or *_add (additive).
EMOTION_STYLES = {
    "neu": {},
    "hap": {
        "pitch": 1.35,
        "range": 1.8,
        "rate": 1.12,
        "formant": 1.09,
        "gain_db": 2.0,
        "tilt": 0.4,
        "flutter_add": 8,
    },
    "ang": {
        "pitch": 1.4,
        "range": 1.5,
        "rate": 1.15,
        "formant": 1.1,
        "f1": 1.12,
        "gain_db": 5.0,
        "tilt": 0.8,
        "roughness_add": 3,
    },
    "sad": {
        "pitch": 0.8,
        "range": 0.45,
        "rate": 0.8,
        "formant": 0.92,
        "gain_db": -5.0,
        "tilt": -0.8,
        "breath_add": 35,
    },
    "sur": {
        "pitch": 1.5,
        "range": 2.1,
        "rate": 0.95,
        "formant": 1.06,
        "gain_db": 2.0,
        "tilt": 0.3,
    },
}
DEFAULT_EMOTIONS = ("neu", "hap", "ang", "sad")
SPLIT_FRACTIONS = {"dev": 0.06}
MIN_TEST_SPEAKERS = 40


class SynthError(RuntimeError):
    """The demo corpus cannot be synthesized (espeak-ng missing, bad size)."""


def draw_speakers(n_speakers, seed, min_distance=0.35):
    """Draw pseudo-speakers whose voices are kept apart.

    Gender, base voice and continuous parameters are drawn independently;
    a candidate closer than ``min_distance`` (in normalised parameter space)
    to an accepted speaker of the same gender and base voice is redrawn, so
    speakers do not collide by chance.

    Arguments
    ---------
    n_speakers : int
        How many speakers.
    seed : int
        Random seed.
    min_distance : float
        Minimum normalised distance between two speakers.

    Returns
    -------
    list of dict
        One dict of voice parameters per speaker.

    Example
    -------
    >>> spk = draw_speakers(4, seed=0)
    >>> [s["spk_id"] for s in spk]
    ['spk000', 'spk001', 'spk002', 'spk003']
    >>> spk == draw_speakers(4, seed=0)
    True
    """
    rng = np.random.default_rng([seed, 1])
    speakers = []
    attempts = 0
    while len(speakers) < n_speakers:
        attempts += 1
        if attempts > 200 * n_speakers:
            raise SynthError(
                f"cannot place {n_speakers} speakers at min_distance "
                f"{min_distance}: lower it or ask for fewer speakers"
            )
        gender = "m" if rng.random() < 0.5 else "f"
        # espeak-ng takes pitch as (base, top) in Hz, each at most 255: keep
        # female bases low enough for the raised pitch of aroused emotions.
        lo, hi = (75.0, 125.0) if gender == "m" else (140.0, 180.0)
        cand = {
            "gender": gender,
            "base": BASE_VOICES[rng.integers(len(BASE_VOICES))],
            "pitch": float(np.exp(rng.uniform(np.log(lo), np.log(hi)))),
            "range": float(rng.uniform(0.3, 0.8)),
            "formant": float(
                rng.uniform(0.88, 1.02)
                if gender == "m"
                else rng.uniform(1.02, 1.18)
            ),
            "formant_jitter": [float(x) for x in rng.uniform(0.95, 1.05, 4)],
            "rate": float(rng.uniform(145, 185)),
            "breath": int(rng.integers(0, 25)),
            "roughness": int(rng.integers(0, 4)),
            "flutter": int(rng.integers(0, 20)),
            "tilt": float(rng.uniform(-0.3, 0.3)),
        }
        vec = _voice_vector(cand)
        if any(
            s["gender"] == cand["gender"]
            and s["base"] == cand["base"]
            and np.linalg.norm(vec - _voice_vector(s)) < min_distance
            for s in speakers
        ):
            continue
        cand["spk_id"] = f"spk{len(speakers):03d}"
        speakers.append(cand)
    return speakers


def _voice_vector(spk):
    """Normalised continuous voice parameters, for the collision check."""
    return np.array(
        [
            np.log(spk["pitch"]) / 0.08,
            spk["formant"] / 0.025,
            spk["range"] / 0.15,
            spk["rate"] / 12.0,
            spk["tilt"] / 0.15,
        ]
    ) * (1.0 / 4.0)


def utterance_params(spk, emo, rng):
    """Voice parameters of one utterance: speaker x emotion x jitter."""
    style = EMOTION_STYLES[emo]

    def jitter(scale):
        return float(np.exp(rng.normal(0.0, scale)))

    formant = spk["formant"] * style.get("formant", 1.0) * jitter(0.01)
    return {
        "pitch": spk["pitch"] * style.get("pitch", 1.0) * jitter(0.04),
        "range": spk["range"] * style.get("range", 1.0) * jitter(0.08),
        "rate": spk["rate"] * style.get("rate", 1.0) * jitter(0.04),
        "formants": [
            formant * j * (style.get("f1", 1.0) if k == 1 else 1.0)
            for k, j in enumerate(spk["formant_jitter"])
        ],
        "breath": spk["breath"] + style.get("breath_add", 0),
        "roughness": min(7, spk["roughness"] + style.get("roughness_add", 0)),
        "flutter": spk["flutter"] + style.get("flutter_add", 0),
        "tilt": spk["tilt"] + style.get("tilt", 0.0) + rng.normal(0.0, 0.05),
        "gain_db": style.get("gain_db", 0.0) + rng.normal(0.0, 1.0),
    }


def variant_text(gender, params):
    """An espeak-ng voice-variant file for one utterance."""
    base = min(250, int(round(params["pitch"])))
    top = min(255, int(round(params["pitch"] * (1.0 + params["range"]))))
    lines = [
        "language variant",
        "name synth",
        f"gender {'male' if gender == 'm' else 'female'}",
        f"pitch {base} {max(top, base + 1)}",
    ]
    for k, scale in enumerate(params["formants"]):
        lines.append(f"formant {k} {int(round(100 * scale))} 100 100")
    breath = params["breath"]
    if breath:
        lines.append(
            "breath " + " ".join([str(breath // 2)] + [str(breath)] * 7)
        )
    lines.append(f"roughness {params['roughness']}")
    lines.append(f"flutter {params['flutter']}")
    return "\n".join(lines) + "\n"


EMOTION_CODES = {emo: k for k, emo in enumerate(EMOTION_STYLES)}


def split_speakers(speakers, seed, n_test=None):
    """Speaker-disjoint train/dev/test splits, balanced by gender.

    Arguments
    ---------
    speakers : list of dict
        As returned by :func:`draw_speakers`.
    seed : int
        Random seed.
    n_test : int, optional
        Test speakers; defaults to a quarter, at least
        :data:`MIN_TEST_SPEAKERS` when there are enough speakers.

    Returns
    -------
    dict
        ``{"train": [...], "dev": [...], "test": [...]}`` speaker ids.

    Example
    -------
    >>> splits = split_speakers(draw_speakers(12, 0), seed=0)
    >>> sorted(len(v) for v in splits.values())
    [2, 3, 7]
    """
    n = len(speakers)
    if n < 3:
        raise SynthError(
            f"need at least 3 speakers for train/dev/test, got {n}"
        )
    if n_test is None:
        # Two test speakers at least, so that non-target trials exist.
        n_test = max(2 if n >= 4 else 1, n // 4)
        if n >= 3 * MIN_TEST_SPEAKERS:
            n_test = max(n_test, MIN_TEST_SPEAKERS)
    n_dev = max(2 if n >= 6 else 1, int(round(n * SPLIT_FRACTIONS["dev"])))
    rng = np.random.default_rng([seed, 2])
    # Alternate genders so that every split gets both.
    by_gender = defaultdict(list)
    for spk in speakers:
        by_gender[spk["gender"]].append(spk["spk_id"])
    for ids in by_gender.values():
        rng.shuffle(ids)
    order = []
    queues = [by_gender[g] for g in sorted(by_gender)]
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop())
    return {
        "test": sorted(order[:n_test]),
        "dev": sorted(order[n_test : n_test + n_dev]),
        "train": sorted(order[n_test + n_dev :]),
    }
