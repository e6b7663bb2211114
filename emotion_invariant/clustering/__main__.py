"""``python -m emotion_invariant.clustering``: see
:mod:`emotion_invariant.clustering.analysis`."""

import sys

from emotion_invariant.clustering.analysis import main
from emotion_invariant.memory import keep_freed_memory

if __name__ == "__main__":
    try:
        keep_freed_memory()
    except ValueError as err:
        sys.exit(f"error: {err}")
    sys.exit(main())
