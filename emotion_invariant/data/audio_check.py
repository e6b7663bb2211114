"""Deprecated: moved to :mod:`emotion_invariant.corpora.audio_check`; this
path goes in release 0.3.0."""

from emotion_invariant.deprecation import moved

moved(
    globals(),
    "emotion_invariant.data.audio_check",
    "emotion_invariant.corpora.audio_check",
)
