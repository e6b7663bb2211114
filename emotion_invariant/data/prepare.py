"""Deprecated: moved to :mod:`emotion_invariant.corpora.prepare`, where its
command line is ``python -m emotion_invariant.corpora.prepare``; this path
goes in release 0.3.0."""

import sys

from emotion_invariant.deprecation import moved

NEW = "emotion_invariant.corpora.prepare"
moved(globals(), "emotion_invariant.data.prepare", NEW)

if __name__ == "__main__":
    sys.exit(main())  # noqa: F821 (set by moved)
