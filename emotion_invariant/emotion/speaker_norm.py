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
"""

import numpy as np


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
