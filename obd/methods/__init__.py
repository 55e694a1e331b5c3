"""Pruning methods: saliencies (magnitude, random, OBD), the loss-aware budget, OBS and SparseGPT, and their
registry."""
