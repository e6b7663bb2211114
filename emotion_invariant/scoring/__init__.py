"""Verification scoring: embeddings, cosine scores, normalisation, metrics."""
