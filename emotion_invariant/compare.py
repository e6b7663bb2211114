"""Deprecated: moved to :mod:`emotion_invariant.comparison` (the command
line and table helpers both recipes' ``compare.py`` share, named apart
from them); this path goes in release 0.3.0."""

from emotion_invariant.deprecation import moved

moved(globals(), "emotion_invariant.compare", "emotion_invariant.comparison")
