"""Keras models: building, training, reading and writing them, fine-tuning with masks (the TensorFlow importers)."""
