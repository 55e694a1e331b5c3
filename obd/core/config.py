"""Configuration of the networks obd trains: presets, architecture and training settings.

Kept free of TensorFlow so that the CLI can check arguments before the seconds-long TensorFlow import.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

PRESETS: dict[str, tuple[tuple[int, ...], bool]] = {
    # name: (hidden sizes, use_bias)
    "challenge": ((1000, 1000, 1000, 1000), False),  # the classic pruning-challenge net: ReLU(xW), no bias
    "notebook": ((1000, 1000, 500, 200), True),  # the original notebook's net
    "tiny": ((128, 64), True),  # trains in seconds: class demos on slow laptops, and the app's tests
    # the one-shot pruning benchmark of WoodFisher, CBS and CHITA: 784-40-20-10, ReLU, no bias, on standardized
    # inputs (INPUT_NORMS) and trained by its own recipe (preset_train_config)
    "mlpnet": ((40, 20), False),
}
INPUT_NORMS: dict[str, tuple[float, float]] = {"mlpnet": (0.1307, 0.3081)}  # preset: (mean, std) of the pixels
OPTIMIZERS = ("adam", "sgd")
INITS = ("glorot", "torch")
SCHEDULES = ("cosine", "constant")
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
    # (mean, std): a first Keras Normalization layer that standardizes the pixels; None feeds them raw
    input_norm: tuple[float, float] | None = None
    # kernel initialisation: "glorot" (Keras' default) or "torch" (PyTorch nn.Linear's U(+-1/sqrt(inputs)), with
    # which the published MLPNet was trained: its smaller start reaches the papers' ~94 %, glorot's 95 %)
    init: str = "glorot"

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
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}, got {self.init!r}")
        if self.input_norm is not None:
            norm = tuple(self.input_norm) if isinstance(self.input_norm, (list, tuple)) else ()
            if len(norm) != 2 or not all(_finite(v) for v in norm) or not norm[1] > 0:
                raise ValueError(f"input_norm must be (mean, std) with std > 0, got {self.input_norm!r}")
            object.__setattr__(self, "input_norm", (float(norm[0]), float(norm[1])))

    def cache_key(self) -> dict:
        """The settings that name a trained model's cache file; input_norm and init only when set, so that the
        presets' cache names from before it existed stay valid."""
        return _without_defaults(self, ("input_norm", "init"))


@dataclass(frozen=True)
class TrainConfig:
    epochs: float = 5  # passes over the training set (fractions allowed: 0.1 = a tenth of an epoch)
    batch_size: int = 128
    learning_rate: float = 1e-3  # Adam's peak rate; cosine-decayed to zero over the run
    seed: int = 0  # weights init and shuffling
    train_limit: int | None = None  # use only the first N training images (tests train on a slice)
    optimizer: str = "adam"  # "adam" or "sgd"
    momentum: float = 0.0  # SGD's momentum (Adam ignores it)
    schedule: str = "cosine"  # "cosine" decays the rate to zero over the run; "constant" keeps it

    def __post_init__(self) -> None:
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, (int, float)) or not 0 < self.epochs <= 100:
            raise ValueError(f"epochs must be a number in (0, 100], got {self.epochs!r}")
        if float(self.epochs).is_integer():  # 5.0 (the CLI's float) and 5 name one cache file, not two trainings
            object.__setattr__(self, "epochs", int(self.epochs))
        if not is_whole(self.batch_size) or not 1 <= self.batch_size <= 60_000:
            raise ValueError(f"batch_size must be a whole number in [1, 60000], got {self.batch_size!r}")
        if (
            isinstance(self.learning_rate, bool)
            or not isinstance(self.learning_rate, (int, float))
            or not 0 < self.learning_rate < 1
        ):
            raise ValueError(f"learning_rate must be in (0, 1), got {self.learning_rate!r}")
        if not is_whole(self.seed) or not 0 <= self.seed < 2**32:  # the range numpy's seeding accepts
            raise ValueError(f"seed must be a whole number in [0, 2**32), got {self.seed!r}")
        if self.train_limit is not None and (not is_whole(self.train_limit) or self.train_limit < 1):
            raise ValueError(f"train_limit must be a positive whole number or None, got {self.train_limit!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if not _finite(self.momentum) or not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}")
        for name in ("batch_size", "seed", "train_limit"):  # numpy integers -> int: the cache key is JSON
            value = getattr(self, name)
            object.__setattr__(self, name, None if value is None else int(value))
        object.__setattr__(self, "momentum", float(self.momentum))

    def cache_key(self) -> dict:
        """The settings that name a trained model's cache file; the optimizer settings only where they differ
        from Adam with a cosine schedule, so that cache names from before they existed stay valid."""
        return _without_defaults(self, ("optimizer", "momentum", "schedule"))


def _finite(value: object) -> bool:
    """A real number (not a bool) that is finite."""
    return (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and bool(np.isfinite(value))
    )


def _without_defaults(config, late: tuple[str, ...]) -> dict:
    """asdict(config) without the fields in `late` (added after caches were named) that hold their default."""
    out = asdict(config)
    for f in fields(config):
        if f.name in late and out[f.name] == f.default:
            del out[f.name]
    return out


def preset_spec(preset: str) -> ModelSpec:
    """The ModelSpec of a named preset; raises ValueError naming the presets."""
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    hidden, use_bias = PRESETS[preset]
    return ModelSpec(hidden, use_bias, INPUT_NORMS.get(preset), "torch" if preset == "mlpnet" else "glorot")


def preset_train_config(preset: str) -> TrainConfig:
    """The training settings of a named preset: mlpnet's published recipe (SGD, rate 1e-3, momentum 0.5, batch 64,
    25 epochs), the defaults for the others. Raises ValueError naming the presets."""
    preset_spec(preset)
    if preset == "mlpnet":
        return TrainConfig(
            epochs=25, batch_size=64, learning_rate=1e-3, optimizer="sgd", momentum=0.5, schedule="constant"
        )
    return TrainConfig()
