"""Losses: cosine consistency, supervised contrastive with angular margin,
the gradient-reversal speaker adversary, and weighted sums of named terms."""
