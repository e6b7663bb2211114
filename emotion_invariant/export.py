"""Deprecated: moved to :mod:`emotion_invariant.models.export`, where its
command line is ``python -m emotion_invariant.models.export``; this path
goes in release 0.3.0."""

import sys

from emotion_invariant.deprecation import moved

moved(globals(), "emotion_invariant.export", "emotion_invariant.models.export")

if __name__ == "__main__":
    sys.exit(main())  # noqa: F821 (set by moved)
