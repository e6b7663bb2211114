"""``python -m emotion_invariant.scoring``: see
:mod:`emotion_invariant.scoring.score`."""

import sys

from emotion_invariant.scoring.score import main

if __name__ == "__main__":
    sys.exit(main())
