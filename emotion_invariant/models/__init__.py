"""Pretrained speaker models: offline acquisition of the published ECAPA."""
