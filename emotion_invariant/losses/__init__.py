"""Losses: cosine consistency, supervised contrastive with angular margin,
and the gradient-reversal speaker adversary."""
