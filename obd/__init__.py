"""obd: an interactive pruning lab for Keras MLPs on MNIST (magnitude, unit and Optimal Brain Damage pruning)."""

import os

# TensorFlow's C++ start-up chatter (oneDNN and CPU-feature notices) would bury obd's own one-line messages;
# a user who wants it sets the variable themselves.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Waiting OpenMP threads that spin take a core from the other runtimes (TensorFlow's, OpenBLAS's, numba's):
# with the default policy a dense batch-1 pass measured 32 ms instead of 0.15 ms on 2 cores. It only reaches
# runtimes started after it is set, so it goes here, before any of them is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# OpenBLAS (numpy's BLAS) has its own spin-wait: after each matmul its workers spin for 2^28 cycles (~80 ms),
# holding the second core while numba's sparse kernel wants it. Measured right after a dense pass, sparse at
# 95 % weight sparsity, batch 10,000: 100 ms with the default, 39-58 ms with 2^16 or 2^4 cycles; dense itself
# unchanged (413 vs 455/414 ms; batch 1: 0.22 vs 0.21 ms). 2^16 cycles (~20 us) still bridges one pass's
# back-to-back layer matmuls. Read when OpenBLAS loads, so this too must precede the first numpy import.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "16")

__version__ = "0.1.0"
