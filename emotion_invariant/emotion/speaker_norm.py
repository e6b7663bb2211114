"""Per-speaker centring of embeddings: the simplest speaker normalisation.

A speaker embedding carries its speaker in its mean over that speaker's
utterances; what varies around the mean is, among other things, emotion.
Subtracting each speaker's mean (computed from unlabelled utterances of
that speaker, the test speakers' included) is the classic speaker
normalisation of speaker-independent emotion recognition, and the baseline
a learned speaker adversary has to beat.

The mean only removes the speaker when it is taken over a varied sample
of the speaker's emotions: a mean over one emotion shifts every
utterance of that speaker by that emotion's offset. ``reference`` chooses
which rows form each speaker's mean, so that this can be measured.

:class:`SpeakerStatistics` normalises features the same way for a model
that trains and infers on normalised features: each speaker's statistics
(mean, and optionally standard deviation) taken from reference utterances
of that speaker (its training utterances, an enrolment set, or its test
utterances: transductive), kept, and applied to any of its utterances.
"""

import logging

import numpy as np
import torch

from emotion_invariant.emotion.metrics import classification_report
from emotion_invariant.emotion.probe import linear_classifier

logger = logging.getLogger(__name__)


class SpeakerNormError(ValueError):
    """Embeddings, speakers and reference rows that do not fit together."""


def speaker_centre(embeddings, speakers, reference=None):
    """Subtract from each row the mean of its speaker's reference rows.

    Arguments
    ---------
    embeddings : array-like
        ``[N, D]`` embeddings (numpy array or torch tensor).
    speakers : sequence of str
        Speaker of each row.
    reference : sequence of bool, optional
        Which rows form their speaker's mean (default: all of them). Every
        speaker needs at least one.

    Returns
    -------
    numpy.ndarray
        ``[N, D]`` float64, each speaker's reference rows averaging to zero.

    Example
    -------
    >>> x = np.array([[1.0, 2.0], [3.0, 2.0], [10.0, 0.0], [12.0, 4.0]])
    >>> speaker_centre(x, ["a", "a", "b", "b"])
    array([[-1.,  0.],
           [ 1.,  0.],
           [-1., -2.],
           [ 1.,  2.]])
    >>> speaker_centre(x, ["a", "a", "b", "b"], [True, False, True, False])
    array([[0., 0.],
           [2., 0.],
           [0., 0.],
           [2., 4.]])
    """
    x = np.asarray(
        embeddings.detach().cpu()
        if hasattr(embeddings, "detach")
        else embeddings,
        dtype=np.float64,
    )
    speakers = np.asarray([str(s) for s in speakers])
    if x.ndim != 2:
        raise SpeakerNormError(
            f"embeddings must be [N, D], got shape {x.shape}"
        )
    if len(speakers) != x.shape[0]:
        raise SpeakerNormError(
            f"{x.shape[0]} embeddings but {len(speakers)} speaker labels"
        )
    if reference is None:
        reference = np.ones(len(speakers), dtype=bool)
    reference = np.asarray(reference)
    if reference.shape != speakers.shape or reference.dtype != bool:
        raise SpeakerNormError(
            f"reference must be {len(speakers)} booleans, one per row, got "
            f"{reference.dtype} of shape {reference.shape}"
        )
    names, index = np.unique(speakers, return_inverse=True)
    counts = np.bincount(index[reference], minlength=len(names))
    if (counts == 0).any():
        missing = names[counts == 0]
        raise SpeakerNormError(
            f"{len(missing)} speaker(s) have no reference utterance, e.g. "
            f"{missing[0]!r}: their mean cannot be taken"
        )
    sums = np.zeros((len(names), x.shape[1]))
    np.add.at(sums, index[reference], x[reference])
    return x - (sums / counts[:, None])[index]


def reference_rows(rows, emotion=None, per_speaker=None, seed=0):
    """Which manifest rows form their speaker's mean.

    Arguments
    ---------
    rows : list of dict
        Manifest rows with ``spk_id`` (and ``emo`` when ``emotion`` is set).
    emotion : str, optional
        Only this emotion's utterances (e.g. ``"neu"``: a neutral
        enrolment).
    per_speaker : int, optional
        At most this many of each speaker's utterances (after ``emotion``),
        drawn with ``seed``.
    seed : int
        Seed of the draw.

    Returns
    -------
    numpy.ndarray
        One boolean per row.

    Example
    -------
    >>> rows = [{"spk_id": s, "emo": e} for s in "ab" for e in "xxyy"]
    >>> reference_rows(rows, emotion="y").astype(int).tolist()
    [0, 0, 1, 1, 0, 0, 1, 1]
    >>> reference_rows(rows, per_speaker=1).sum()
    np.int64(2)
    """
    chosen = np.ones(len(rows), dtype=bool)
    if emotion is not None:
        chosen &= np.array([row["emo"] == emotion for row in rows], bool)
    if per_speaker is not None:
        if per_speaker < 1:
            raise SpeakerNormError(
                f"per_speaker must be 1 or more, got {per_speaker}"
            )
        rng = np.random.default_rng(seed)
        by_speaker = {}
        for i in np.flatnonzero(chosen):
            by_speaker.setdefault(rows[i]["spk_id"], []).append(i)
        chosen[:] = False
        for spk in sorted(by_speaker):
            group = by_speaker[spk]
            keep = rng.choice(group, min(per_speaker, len(group)), False)
            chosen[keep] = True
    return chosen


def centred_backend(train, test, labels, c=1.0, seed=0, centre=True):
    """Emotion from speaker-centred embeddings: fit on train, score test.

    Each side's embeddings are centred on their speakers' means (see
    :func:`emotion_invariant.emotion.speaker_norm.speaker_centre`), then a
    logistic regression on standardised inputs learns the training
    speakers' emotions and predicts the test speakers'. ``centre=False``
    gives the same classifier on the embeddings as they are: the control
    that tells the centring's gain from the classifier's.

    Arguments
    ---------
    train, test : tuple
        ``(embeddings [N, D], speakers, emotion indices)`` each.
    labels : list of str
        Emotion names, indexed by the emotion indices.
    c : float
        Inverse L2 strength of the logistic regression.
    seed : int
        Seed of the solver.
    centre : bool
        Centre on the speakers' means (False: the control).

    Returns
    -------
    dict
        :func:`emotion_invariant.emotion.metrics.classification_report` of
        the test side.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> def side(n_spk):
    ...     spk = np.repeat(np.arange(n_spk), 20)
    ...     emo = np.tile([0, 1], 10 * n_spk)
    ...     x = 10 * rng.normal(size=(n_spk, 3))[spk] + np.eye(3)[emo]
    ...     return x + 0.1 * rng.normal(size=x.shape), spk, emo
    >>> train, test = side(6), side(3)
    >>> centred_backend(train, test, ["neu", "ang"])["ua"]
    1.0
    >>> centred_backend(train, test, ["neu", "ang"], centre=False)["ua"] < 0.9
    True
    """
    x_train, x_test = (
        speaker_centre(x, spk) if centre else np.asarray(x, dtype=np.float64)
        for x, spk, _ in (train, test)
    )
    model = linear_classifier(c, seed, max_iter=2000)
    model.fit(x_train, np.asarray(train[2]))
    return classification_report(list(test[2]), model.predict(x_test), labels)


#: The per-speaker normalisations of features: none, subtract the
#: speaker's mean, or also divide by the speaker's standard deviation.
MODES = ("none", "centre", "centre+scale")


class SpeakerStatistics:
    """Each speaker's feature statistics, and their application.

    ``centre`` subtracts from a speaker's features their mean over that
    speaker's reference utterances (enrolment, training or test ones, as
    the caller chooses); ``centre+scale`` also divides each dimension by
    the speaker's standard deviation there. A speaker with fewer than two
    reference utterances has no statistics of its own (one utterance
    would be centred to zero): it falls back, with a warning naming it,
    to the average of the training speakers' statistics (:meth:`fallback`),
    that is to no speaker-specific normalisation, on the scale the model
    was trained on.

    Arguments
    ---------
    mode : str
        One of :data:`MODES`.
    fallback : tuple of torch.Tensor, optional
        ``(mean, scale)`` for speakers without statistics (default: those
        of :meth:`fit`'s speakers, once fitted).

    Example
    -------
    >>> x = torch.tensor([[1.0, 0.0], [3.0, 4.0], [10.0, 2.0]])
    >>> norm = SpeakerStatistics("centre").fit(x[:2], ["a", "a"])
    >>> norm.apply(x, ["a", "a", "b"])  # b: the average of a's mean
    tensor([[-1., -2.],
            [ 1.,  2.],
            [ 8.,  0.]])
    >>> SpeakerStatistics("centre+scale").fit(x[:2], "aa").apply(x[:2], "aa")
    tensor([[-1., -1.],
            [ 1.,  1.]])
    """

    def __init__(self, mode="none", fallback=None):
        if mode not in MODES:
            raise SpeakerNormError(
                f"speaker_norm: {mode!r} is not valid; expected one of: "
                f"{', '.join(MODES)}"
            )
        self.mode = mode
        self.stats = {}
        self.population = fallback

    def fit(self, features, speakers, where="speakers"):
        """Take each speaker's statistics from its rows of ``features``.

        Arguments
        ---------
        features : torch.Tensor
            ``[N, F]`` reference features.
        speakers : sequence of str
            Speaker of each row.
        where : str
            What the rows are, for the warning.

        Returns
        -------
        SpeakerStatistics
            ``self``; the first fit also sets the fallback statistics.
        """
        speakers = [str(s) for s in speakers]
        if len(speakers) != len(features):
            raise SpeakerNormError(
                f"{len(features)} feature rows but {len(speakers)} speakers"
            )
        if self.mode == "none":
            return self
        rows = {}
        for i, spk in enumerate(speakers):
            rows.setdefault(spk, []).append(i)
        single = sorted(s for s, r in rows.items() if len(r) < 2)
        if single:
            logger.warning(
                "speaker_norm %s: %s with a single utterance in the %s: no "
                "statistics of their own, normalised with the training "
                "speakers' average instead",
                self.mode,
                ", ".join(repr(s) for s in single),
                where,
            )
        x = torch.as_tensor(features, dtype=torch.float64)
        for spk, index in rows.items():
            if len(index) < 2:
                continue
            group = x[index]
            scale = torch.ones(x.shape[1], dtype=torch.float64)
            if self.mode == "centre+scale":
                scale = group.std(0, unbiased=False)
                # A dimension constant over a few utterances is not divided
                # into noise.
                scale = scale.clamp(min=1e-3 * float(scale.mean()) + 1e-12)
            self.stats[spk] = (group.mean(0), scale)
        if self.population is None and self.stats:
            means, scales = zip(*self.stats.values())
            self.population = (
                torch.stack(means).mean(0),
                torch.stack(scales).mean(0),
            )
        return self

    def fallback(self):
        """``(mean, scale)`` of a speaker without statistics of its own."""
        if self.population is None:
            raise SpeakerNormError(
                "speaker_norm: no speaker with two or more utterances to "
                "take statistics from"
            )
        return self.population

    def apply(self, features, speakers):
        """``features`` ``[N, F]`` normalised with their speakers'
        statistics (float32); the identity for ``none``."""
        if self.mode == "none":
            return torch.as_tensor(features)
        x = torch.as_tensor(features, dtype=torch.float64).clone()
        speakers = [str(s) for s in speakers]
        for spk in sorted(set(speakers)):
            mean, scale = self.stats.get(spk) or self.fallback()
            index = [i for i, s in enumerate(speakers) if s == spk]
            x[index] = (x[index] - mean) / scale
        return x.float()
