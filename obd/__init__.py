"""obd: an interactive pruning lab for Keras MLPs on MNIST (magnitude, unit and Optimal Brain Damage pruning)."""

import os

# TensorFlow's C++ start-up chatter (oneDNN and CPU-feature notices) would bury obd's own one-line messages;
# a user who wants it sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
