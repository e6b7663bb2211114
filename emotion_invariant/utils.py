"""Deprecated: split into :mod:`emotion_invariant.atomic` (files written
whole or not at all), :mod:`emotion_invariant.messages` (one-line error
messages), :mod:`emotion_invariant.seeding` (per-step seeds, generators
from seeds) and :mod:`emotion_invariant.memory` (malloc's settings for CPU
training); this path goes in release 0.3.0."""

from emotion_invariant.deprecation import moved

for _module in ("atomic", "messages", "seeding", "memory"):
    moved(globals(), "emotion_invariant.utils", f"emotion_invariant.{_module}")
del _module
