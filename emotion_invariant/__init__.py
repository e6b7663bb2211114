"""Emotion-invariant speaker and speaker-invariant emotion representations.

A SpeechBrain extension: augmentations, losses, data preparation and
verification scoring that make speaker embeddings robust to emotion and
emotion embeddings robust to speaker.
"""

__version__ = "0.1.0"
