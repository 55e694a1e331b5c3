"""obd: an interactive pruning lab for Keras MLPs on MNIST (magnitude, unit and Optimal Brain Damage pruning)."""

import os

# TensorFlow's C++ start-up chatter (oneDNN and CPU-feature notices) would bury obd's own one-line messages;
# a user who wants it sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Waiting OpenMP threads that spin take a core from the other runtimes (TensorFlow's, OpenBLAS's, numba's):
# with the default policy a dense batch-1 pass measured 32 ms instead of 0.15 ms on 2 cores. It only reaches
# runtimes started after it is set, so it goes here, before any of them is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
