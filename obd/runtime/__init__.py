"""Running a (pruned) network fast: the dense, shrunk and sparse engines, their kernels and threads, latency, bench."""
