"""Deprecated: moved to :mod:`emotion_invariant.clustering` (the method in
``clustering.kmeans``, the command line ``python -m
emotion_invariant.clustering`` in ``clustering.analysis``); this path goes
in release 0.3.0."""

import sys

from emotion_invariant.deprecation import moved

moved(globals(), "emotion_invariant.cluster", "emotion_invariant.clustering")
moved(
    globals(),
    "emotion_invariant.cluster",
    "emotion_invariant.clustering.analysis",
)

if __name__ == "__main__":
    sys.exit(main())  # noqa: F821 (set by moved)
