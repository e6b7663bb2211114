"""Deprecated: moved to :mod:`emotion_invariant.corpora.synth`, where its
command line is ``python -m emotion_invariant.corpora.synth``; this path
goes in release 0.3.0."""

import sys

from emotion_invariant.deprecation import moved

moved(
    globals(), "emotion_invariant.data.synth", "emotion_invariant.corpora.synth"
)

if __name__ == "__main__":
    sys.exit(main())  # noqa: F821 (set by moved)
