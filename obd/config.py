"""Configuration of the networks obd trains: presets, architecture and training settings.

Kept free of TensorFlow so that the CLI can check arguments before the 4-5 s TensorFlow import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRESETS: dict[str, tuple[tuple[int, ...], bool]] = {
    # name: (hidden sizes, use_bias)
    "challenge": ((1000, 1000, 1000, 1000), False),  # the classic pruning-challenge net: ReLU(xW), no bias
    "notebook": ((1000, 1000, 500, 200), True),  # the original notebook's net
    "tiny": ((128, 64), True),  # trains in seconds: class demos on slow laptops, and the app's tests
}
DEFAULT_PRESET = "challenge"
MAX_UNITS = 8192  # per hidden layer; larger nets do not fit a 2-core interactive demo
INPUTS, CLASSES = 784, 10


def is_whole(value: object) -> bool:
    """True for Python and numpy integers, but not for bools (True is an int to Python, never a size)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


@dataclass(frozen=True)
class ModelSpec:
    hidden: tuple[int, ...] = PRESETS[DEFAULT_PRESET][0]  # hidden layer sizes
    use_bias: bool = PRESETS[DEFAULT_PRESET][1]  # the challenge net has no biases

    def __post_init__(self) -> None:
        hidden = tuple(self.hidden) if isinstance(self.hidden, (list, tuple)) else ()
        if not hidden or not all(is_whole(h) for h in hidden):
            raise ValueError(f"hidden sizes must be a non-empty list of whole numbers, got {self.hidden!r}")
        if not all(1 <= h <= MAX_UNITS for h in hidden):
            raise ValueError(f"each hidden size must be between 1 and {MAX_UNITS}, got {list(hidden)}")
        if not isinstance(self.use_bias, (bool, np.bool_)):
            raise ValueError(f"use_bias must be True or False, got {self.use_bias!r}")
        object.__setattr__(self, "hidden", tuple(int(h) for h in hidden))
        object.__setattr__(self, "use_bias", bool(self.use_bias))


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 5  # passes over the training set (fractions allowed: 0.1 = a tenth of an epoch)
    batch_size: int = 128
    learning_rate: float = 1e-3  # Adam's peak rate; cosine-decayed to zero over the run
    seed: int = 0  # weights init and shuffling
    train_limit: int | None = None  # use only the first N training images (tests train on a slice)

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not 0 < self.epochs <= 100:
            raise ValueError(f"epochs must be a number in (0, 100], got {self.epochs!r}")
        if not is_whole(self.batch_size) or not 1 <= self.batch_size <= 60_000:
            raise ValueError(f"batch_size must be a whole number in [1, 60000], got {self.batch_size!r}")
        if isinstance(self.learning_rate, bool) or not isinstance(self.learning_rate, (int, float)) \
                or not 0 < self.learning_rate < 1:
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not is_whole(self.seed) or not 0 <= self.seed < 2**32:  # the range numpy's seeding accepts
            raise ValueError(f"seed must be a whole number in [0, 2**32), got {self.seed!r}")
        if self.train_limit is not None and (not is_whole(self.train_limit) or self.train_limit < 1):
            raise ValueError(f"train_limit must be a positive whole number or None, got {self.train_limit!r}")
        for name in ("batch_size", "seed", "train_limit"):  # numpy integers -> int: the cache key is JSON
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else int(value))


def preset_spec(preset: str) -> ModelSpec:
    """The ModelSpec of a named preset; raises ValueError naming the presets."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    hidden, use_bias = PRESETS[preset]
    return ModelSpec(hidden, use_bias)
