"""Speaker verification: the speaker recipe's data (``data``), its model
set-up (``model``), its evaluation on emotional trials (``evaluation``) and
pair verification with a model folder (``verify``, ``python -m
emotion_invariant.verification.verify``); the counterpart of
:mod:`emotion_invariant.emotion`. Scores, normalisation and metrics are in
:mod:`emotion_invariant.scoring`, which imports no model code.
"""
