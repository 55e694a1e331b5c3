"""The foundation every other layer builds on: configuration, the numpy network, MNIST, files and caches, masks."""
