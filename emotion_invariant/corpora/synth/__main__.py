"""``python -m emotion_invariant.corpora.synth``: synthesize the demo corpus."""

import sys

from emotion_invariant.corpora.synth import main

sys.exit(main())
