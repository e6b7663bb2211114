"""``python -m emotion_invariant.clustering``: see
:mod:`emotion_invariant.clustering.analysis`."""

import sys

from emotion_invariant.clustering.analysis import main

if __name__ == "__main__":
    sys.exit(main())
