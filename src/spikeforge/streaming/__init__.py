"""Keyword spotting on an endless signal: causal features, the model step by step, a TF-style detection rule."""
