"""obd: an interactive pruning lab for Keras MLPs on MNIST (magnitude, unit and Optimal Brain Damage pruning)."""

__version__ = "0.1.0"
