"""Keyword spotting on audio: one clip classified whole, or an endless signal (causal features, the model step by step, a TF-style detection rule)."""
