"""Deprecated: moved to :mod:`emotion_invariant.corpora`, and each corpus
module ``emotion_invariant.data.corpora.<corpus>`` to
``emotion_invariant.corpora.<corpus>``; these paths go in release 0.3.0."""

import importlib
import sys

from emotion_invariant.corpora.prepare import CORPORA
from emotion_invariant.deprecation import moved

moved(globals(), "emotion_invariant.data.corpora", "emotion_invariant.corpora")

# The corpus modules keep their old paths too, without a file each.
for _corpus in set(CORPORA) - {"synth"}:
    globals()[_corpus] = sys.modules[f"{__name__}.{_corpus}"] = (
        importlib.import_module(f"emotion_invariant.corpora.{_corpus}")
    )
