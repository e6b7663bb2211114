"""Data: demo-corpus synthesis, corpus preparation, manifests and trials."""
