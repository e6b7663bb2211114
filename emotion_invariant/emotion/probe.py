"""Speaker-leakage probe of frozen emotion embeddings.

How much speaker identity an emotion embedding still carries, the quantity
that adversarial training (Li et al., ICASSP 2020) is meant to remove: a
linear classifier (scikit-learn's ``LogisticRegression`` on standardised
embeddings) learns to name the speaker from some of each training
speaker's utterances and is scored on the others. Accuracy near chance
means little linearly decodable speaker information is left.
"""

import random
from collections import Counter

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class ProbeError(ValueError):
    """Embeddings or speaker labels the probe cannot use."""


def linear_classifier(c=1.0, seed=0, max_iter=1000):
    """The linear reference classifier of this package: standardise each
    column on the training rows, then an L2 logistic regression of inverse
    strength ``c``, solved with ``seed`` for at most ``max_iter``
    iterations. The speaker probe, the centred back-end and the layers'
    reference all use it, so that they differ only where they say so.

    Example
    -------
    >>> model = linear_classifier(c=10.0)
    >>> x = np.array([[0.0, 5.0], [1.0, -3.0], [0.1, 2.0], [0.9, 7.0]])
    >>> model.fit(x, [0, 1, 0, 1]).predict(x).tolist()
    [0, 1, 0, 1]
    """
    return make_pipeline(
        StandardScaler(),
        LogisticRegression(C=c, max_iter=max_iter, random_state=seed),
    )


def split_per_speaker(speakers, held_out=0.3, seed=0):
    """Split each speaker's utterances into probe-training and held-out.

    Every speaker with at least two utterances lands on both sides, with
    ``held_out`` of its utterances (at least one, never all) held out.
    Written here rather than with scikit-learn's stratified splitters,
    which do not promise that rare classes reach both sides.

    Arguments
    ---------
    speakers : list of str
        Speaker of each utterance.
    held_out : float
        Fraction of each speaker's utterances held out, in (0, 1).
    seed : int
        The same labels and seed always give the same split.

    Returns
    -------
    train : numpy.ndarray
        Sorted indices of the probe's training utterances.
    test : numpy.ndarray
        Sorted indices of the held-out utterances.
    skipped : list of str
        Speakers with a single utterance, left out of both sides.

    Example
    -------
    >>> train, test, skipped = split_per_speaker(
    ...     ["a", "a", "a", "a", "b", "b", "c"], held_out=0.5)
    >>> len(train), len(test), skipped
    (3, 3, ['c'])
    """
    if not 0 < held_out < 1:
        raise ProbeError(f"held_out must be in (0, 1), got {held_out}")
    rng = np.random.default_rng(seed)
    by_speaker = {}
    for index, spk in enumerate(speakers):
        by_speaker.setdefault(spk, []).append(index)
    train, test, skipped = [], [], []
    for spk in sorted(by_speaker):
        indices = by_speaker[spk]
        if len(indices) < 2:
            skipped.append(spk)
            continue
        order = rng.permutation(indices)
        n_test = min(len(order) - 1, max(1, round(held_out * len(order))))
        test.extend(order[:n_test].tolist())
        train.extend(order[n_test:].tolist())
    return np.array(sorted(train)), np.array(sorted(test)), skipped


def speaker_probe(
    embeddings, speakers, held_out=0.3, seed=0, c=1.0, max_iter=1000
):
    """Train a linear speaker classifier on embeddings; score held-out ones.

    Arguments
    ---------
    embeddings : array-like
        ``[N, D]`` frozen embeddings (a torch tensor or a numpy array).
    speakers : list of str
        Speaker of each row.
    held_out : float
        Fraction of each speaker's utterances held out for scoring.
    seed : int
        Seed of the split and of the solver.
    c : float
        Inverse L2 regularisation strength of the logistic regression.
    max_iter : int
        Iterations of the solver.

    Returns
    -------
    dict
        ``accuracy`` (held-out speaker accuracy), the chance levels
        ``chance_uniform`` (``1 / n_speakers``) and ``chance_majority``
        (the most frequent held-out speaker's share), ``n_speakers``,
        ``n_train``, ``n_test`` and ``skipped_speakers`` (speakers with a
        single utterance, which cannot be both learned and scored).

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> ids = np.arange(60) % 3
    >>> spk = [f"s{i}" for i in ids]
    >>> emb = rng.normal(size=(60, 4)) + 5 * np.eye(4)[ids]
    >>> result = speaker_probe(emb, spk)
    >>> result["accuracy"], round(result["chance_uniform"], 3)
    (1.0, 0.333)
    """
    x = np.asarray(
        embeddings.detach().cpu()
        if hasattr(embeddings, "detach")
        else embeddings,
        dtype=np.float64,
    )
    speakers = [str(s) for s in speakers]
    if x.ndim != 2:
        raise ProbeError(f"embeddings must be [N, D], got shape {x.shape}")
    if x.shape[0] != len(speakers):
        raise ProbeError(
            f"{x.shape[0]} embeddings but {len(speakers)} speaker labels"
        )
    if not np.isfinite(x).all():
        row = int(np.argmax(~np.isfinite(x).all(axis=1)))
        raise ProbeError(f"embedding {row} has a NaN or infinite value")
    train, test, skipped = split_per_speaker(speakers, held_out, seed)
    y = np.array(speakers)
    n_speakers = len(set(y[train])) if train.size else 0
    if n_speakers < 2:
        raise ProbeError(
            f"the speaker probe needs at least 2 speakers with 2 or more "
            f"utterances each, got {n_speakers}"
        )
    probe = linear_classifier(c, seed, max_iter)
    probe.fit(x[train], y[train])
    accuracy = float((probe.predict(x[test]) == y[test]).mean())
    majority = Counter(y[test].tolist()).most_common(1)[0][1]
    return {
        "accuracy": accuracy,
        "chance_uniform": 1.0 / n_speakers,
        "chance_majority": majority / len(test),
        "n_speakers": n_speakers,
        "n_train": int(train.size),
        "n_test": int(test.size),
        "skipped_speakers": skipped,
    }


def probe_rows(rows, per_speaker=None, seed=0):
    """Up to ``per_speaker`` utterances of each speaker, drawn with ``seed``.

    Example
    -------
    >>> rows = [{"ID": str(i), "spk_id": "ab"[i % 2]} for i in range(6)]
    >>> len(probe_rows(rows, per_speaker=2)), len(probe_rows(rows))
    (4, 6)
    """
    if per_speaker is None:
        return list(rows)
    by_speaker = {}
    for row in rows:
        by_speaker.setdefault(row["spk_id"], []).append(row)
    rng = random.Random(seed)
    chosen = []
    for spk in sorted(by_speaker):
        group = by_speaker[spk]
        chosen.extend(rng.sample(group, min(per_speaker, len(group))))
    return chosen
