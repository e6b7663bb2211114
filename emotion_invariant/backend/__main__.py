"""``python -m emotion_invariant.backend``: see
:mod:`emotion_invariant.backend.fitting`."""

import sys

from emotion_invariant.backend.fitting import main

if __name__ == "__main__":
    sys.exit(main())
