"""The error raised for unusable embeddings, cohorts and scoring options."""


class ScoringError(ValueError):
    """Embeddings, a cohort or an option that scoring cannot use as given.

    Trial-list problems raise
    :class:`emotion_invariant.data.manifest.ManifestError` instead; both are
    ``ValueError`` subclasses, so one ``except ValueError`` catches either.

    Example
    -------
    >>> raise ScoringError("emb.npz: duplicate id 'a'")
    Traceback (most recent call last):
    ...
    emotion_invariant.scoring.errors.ScoringError: emb.npz: duplicate id 'a'
    """
