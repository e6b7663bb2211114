"""Augmentations: emotion CopyPaste and energy-guided emotion-aware masking."""
