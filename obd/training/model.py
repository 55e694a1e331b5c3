"""The MLPs obd prunes: presets, training with progress, safe .keras save/load, and the cached default model.

The default model is trained once and kept in a cache directory (OBD_CACHE_DIR, default ~/.cache/obd),
under a file name keyed by the architecture and training settings; writes are atomic (temp file + rename)
so a crash never leaves a half-written cache, and a corrupt cache file is retrained, never a crash. Beside each
cached .keras goes the Network's .npz, which `obd.core.files.cached_network` opens without TensorFlow (the cache's
paths and file formats live there, TF-free; they are re-exported here).
Model files from users are checked before Keras reads them (obd.core.modelcheck: sizes, archive structure, an
allowlist of layers, no code): every refusal is one ModelFileError saying what was wrong and what is supported.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np

from obd.core.cache import atomic_write
from obd.core.config import (
    CLASSES,
    DEFAULT_PRESET,
    INPUTS,
    ModelSpec,
    TrainConfig,
    preset_spec,
    preset_train_config,
)
from obd.core.data import Mnist, load_mnist
from obd.core.files import ModelFileError, cache_path, network_path, save_network
from obd.core.modelcheck import check_keras_file, reason, refuse
from obd.core.network import from_keras

# The least time between two progress reports. The app redraws its progress bar at each one: redrawn after every
# batch, in-app training ran at 15 batches/s against 37 in the CLI.
PROGRESS_SECONDS = 0.25
STEPS_PER_CALL = 64  # the most batches one call into TensorFlow runs (`steps_per_execution`, `steps_per_call`)


class _ExpectedRetracing(logging.Filter):
    """Drops TensorFlow's retracing warning: every fit here compiles a model afresh (fine-tuning builds a new one per
    point), so one trace per fit is the design, not the waste the warning suspects."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "triggered tf.function retracing" not in record.getMessage()


logging.getLogger("tensorflow").addFilter(_ExpectedRetracing())


def build_model(spec: ModelSpec = ModelSpec(), seed: int = 0):
    """A fresh, untrained Keras MLP: 784 inputs, ReLU hidden layers, 10 logits.

    Args:
        spec: hidden sizes and whether layers have biases.
        seed: initialisation seed.

    Returns:
        An uncompiled `keras.Sequential`.
    """
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(name="mlp_" + "_".join(map(str, spec.hidden)))
    model.add(keras.Input((INPUTS,)))
    if spec.input_norm is not None:  # standardized pixels: a fixed layer that pruning leaves alone
        mean, std = spec.input_norm
        model.add(keras.layers.Normalization(mean=mean, variance=std**2, name="standardize"))

    def init():  # a new initializer per layer, drawn from the seeded global generator
        return (
            "glorot_uniform"
            if spec.init == "glorot"
            else keras.initializers.VarianceScaling(1 / 3, "fan_in", "uniform")
        )  # U(+-1/sqrt(inputs))

    for i, units in enumerate(spec.hidden):
        model.add(
            keras.layers.Dense(
                units, activation="relu", use_bias=spec.use_bias, kernel_initializer=init(), name=f"dense_{i}"
            )
        )
    model.add(keras.layers.Dense(CLASSES, use_bias=spec.use_bias, kernel_initializer=init(), name="logits"))
    return model


@dataclass(frozen=True)
class TrainProgress:
    """What a progress callback receives after a batch (see `train` for which batches are reported)."""

    epoch: int  # 1-based
    epochs: int
    step: int  # batches done in total
    steps: int  # batches in the whole run
    loss: float  # running mean over the current epoch
    accuracy: float  # running mean over the current epoch


ProgressFn = Callable[[TrainProgress], None]


class _Steps(keras.callbacks.Callback):
    """Counts the batches done in the whole run. Keras calls `on_train_batch_end` once per call into TensorFlow,
    which runs up to `steps_per_execution` batches (fewer at an epoch's end), with the index of the call's last
    batch as if it had run all of them."""

    def __init__(self, steps_per_epoch: int, steps: int) -> None:
        super().__init__()
        self.steps_per_epoch, self.steps, self.epoch = steps_per_epoch, steps, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def done(self, batch: int) -> int:
        """Batches done in the run after the call that ended at `batch` (an index within the epoch)."""
        return min(self.epoch * self.steps_per_epoch + min(batch + 1, self.steps_per_epoch), self.steps)


class _Progress(_Steps):
    """Reports after the first call, then at most once per `seconds` (counted from the end of the previous
    report, so a slow consumer cannot take over the training), and always after the last batch."""

    def __init__(self, progress: ProgressFn, epochs: int, steps_per_epoch: int, steps: int, seconds: float) -> None:
        super().__init__(steps_per_epoch, steps)
        self.progress, self.epochs = progress, epochs
        self.seconds, self.next_report = seconds, 0.0  # time.monotonic() from which the next report is due

    def on_train_batch_end(self, batch, logs=None):
        step = self.done(batch)
        if step < self.steps and time.monotonic() < self.next_report:
            return
        logs = logs or {}
        self.progress(
            TrainProgress(
                self.epoch + 1,
                self.epochs,
                step,
                self.steps,
                float(logs.get("loss", np.nan)),
                float(logs.get("accuracy", np.nan)),
            )
        )
        self.next_report = time.monotonic() + self.seconds


class TrainingStopped(RuntimeError):
    """A training ended before its last batch because its `stop` said so; nothing of it was kept."""


class _StopAfter(_Steps):
    """Ends training after `steps` batches, so that fractional epochs stop mid-epoch; or earlier, after the call in
    which `stop()` turned true (a call is at most STEPS_PER_CALL batches), with `stopped_at` the batches done."""

    def __init__(self, steps_per_epoch: int, steps: int, stop: Callable[[], bool] | None = None) -> None:
        super().__init__(steps_per_epoch, steps)
        self.stop, self.stopped_at = stop, None

    def on_train_batch_end(self, batch, logs=None):
        done = self.done(batch)
        if done < self.steps and self.stop is not None and self.stop():
            self.stopped_at = done
        if done >= self.steps or self.stopped_at is not None:
            self.model.stop_training = True


def steps_per_call(steps: int, steps_per_epoch: int, every_batch: bool) -> int:
    """How many batches one call into TensorFlow runs (Keras' `steps_per_execution`).

    Python's work between batches (Keras' loop, callbacks) dominates a small net's training; running many batches
    per call removes most of it, with the same weights to the bit (the same batches, in the same order, through
    the same ops). Callbacks see only the end of each call, so `every_batch` (a progress
    report after every batch) takes 1. A run that ends mid-epoch takes a divisor of its last epoch's
    batches, so that it stops exactly where asked.

    Args:
        steps: batches in the whole run.
        steps_per_epoch: batches in one pass over the training set.
        every_batch: whether a callback must run after every batch.

    Returns:
        A whole number from 1 to STEPS_PER_CALL.
    """
    if every_batch:
        return 1
    last = steps - (-(-steps // steps_per_epoch) - 1) * steps_per_epoch  # batches in the last epoch
    if last == steps_per_epoch:  # whole epochs: a call that runs past an epoch's end stops there by itself
        return min(STEPS_PER_CALL, steps_per_epoch)
    return max(d for d in range(1, min(STEPS_PER_CALL, last) + 1) if last % d == 0)


@contextlib.contextmanager
def _masked(model, masks: list[np.ndarray], mode: str) -> Iterator[None]:
    """Hold fixed masks on a model's Dense kernels (and, in unit mode, on pruned units' biases) while inside: the
    masked entries are zeroed now and after every optimizer step, so training never revives a pruned weight or
    unit. Each mask is a variable constraint, which Keras applies inside the compiled step (after any constraint the
    variable had): many batches run per call into TensorFlow, where a callback would need one call per batch.
    The variables' own constraints are back on leaving."""
    dense = [l for l in model.layers if isinstance(l, keras.layers.Dense)]
    if len(dense) != len(masks):
        raise ValueError(f"got {len(masks)} masks for {len(dense)} Dense layers")
    pairs = [(l.kernel, np.asarray(m, dtype=np.float32)) for l, m in zip(dense, masks)]
    if mode == "unit":  # a pruned unit's bias stays 0 too, so the unit keeps outputting exactly 0
        pairs += [
            (l.bias, np.asarray(np.asarray(m, dtype=bool).any(axis=0), dtype=np.float32))
            for l, m in zip(dense, masks)
            if l.use_bias
        ]
    saved = [variable.constraint for variable, _ in pairs]
    for (variable, m), own in zip(pairs, saved):
        variable.assign(variable.numpy() * m)
        variable.constraint = functools.partial(_times, mask=m, own=own)
    try:
        yield
    finally:
        for (variable, _), own in zip(pairs, saved):
            variable.constraint = own


def _times(w, mask: np.ndarray, own: Callable | None):
    """A mask constraint: `own`'s constraint first (if the variable had one), then the mask."""
    return (w if own is None else own(w)) * mask


def train(
    model,
    data: Mnist | tuple[np.ndarray, np.ndarray],
    config: TrainConfig = TrainConfig(),
    progress: ProgressFn | None = None,
    masks: list[np.ndarray] | None = None,
    mode: str = "weight",
    progress_seconds: float = PROGRESS_SECONDS,
    stop: Callable[[], bool] | None = None,
) -> dict[str, list[float]]:
    """Train a model in place with Adam or SGD with momentum, at a cosine-decayed or constant learning rate.

    Args:
        model: a Keras model from `build_model` (or any Dense MLP with logits output).
        data: MNIST (its training set), or (x, y): inputs as the model takes them and integer labels.
        config: epochs (fractions allowed), batch size, learning rate, optimizer, momentum, schedule, seed,
            optional training slice.
        progress: called with a TrainProgress after the first call into TensorFlow (`steps_per_call` batches),
            then at most every `progress_seconds`, and after the last batch.
        masks: optional kernel-shaped bool masks (True = kept), one per Dense layer: pruned weights are
            zeroed before training and after every step, so fine-tuning keeps the sparsity pattern.
        mode: the masks' pruning mode; with "unit", pruned units' biases are held at 0 as well.
        progress_seconds: the least time between two reports; 0 reports every batch (and runs one batch per
            call, slower).
        stop: asked after each call into TensorFlow; once it answers True the training ends there and raises
            TrainingStopped (the dashboard's background training asks whether the server is told to stop).

    Returns:
        The Keras history: {"loss": [...], "accuracy": [...]} per epoch.

    Raises:
        ValueError: when progress_seconds is negative or not a number.
        TrainingStopped: when `stop` ended the training early; the model is then half trained.
    """
    if not (isinstance(progress_seconds, (int, float)) and progress_seconds >= 0):
        raise ValueError(f"progress_seconds must be a number >= 0, got {progress_seconds!r}")
    keras.utils.set_random_seed(config.seed)
    x, y = (data.x_train, data.y_train) if isinstance(data, Mnist) else data
    n = len(x) if config.train_limit is None else min(config.train_limit, len(x))
    steps_per_epoch = -(-n // config.batch_size)
    steps = max(1, round(config.epochs * steps_per_epoch))
    epochs = -(-steps // steps_per_epoch)
    rate = (
        config.learning_rate
        if config.schedule == "constant"
        else keras.optimizers.schedules.CosineDecay(config.learning_rate, decay_steps=steps)
    )
    optimizer = (
        keras.optimizers.Adam(rate)
        if config.optimizer == "adam"
        else keras.optimizers.SGD(rate, momentum=config.momentum)
    )
    per_call = steps_per_call(steps, steps_per_epoch, every_batch=progress_seconds == 0)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        steps_per_execution=per_call,
    )
    callbacks = [ends := _StopAfter(steps_per_epoch, steps, stop)]  # fractional epochs end mid-epoch
    if progress is not None:
        callbacks.append(_Progress(progress, epochs, steps_per_epoch, steps, progress_seconds))
    with _masked(model, masks, mode) if masks is not None else contextlib.nullcontext():
        history = model.fit(
            x[:n],
            y[:n],
            batch_size=config.batch_size,
            epochs=epochs,
            shuffle=True,
            verbose=0,
            callbacks=callbacks,
        )
    if ends.stopped_at is not None:
        raise TrainingStopped(f"training stopped after {ends.stopped_at} of {steps} batches")
    return {k: [float(v) for v in vs] for k, vs in history.history.items()}


def _check_supported(model, path: Path) -> None:
    """Raise ModelFileError unless the model is a Dense MLP from 784 inputs to 10 logits."""
    try:
        net = from_keras(model)
    except ValueError as e:
        raise ModelFileError(f"{path.name}: {e}") from None
    if net.sizes[0] != INPUTS or net.sizes[-1] != CLASSES:
        raise ModelFileError(
            f"{path.name}: the model maps {net.sizes[0]} inputs to {net.sizes[-1]} outputs; obd needs an MNIST "
            f"classifier with {INPUTS} inputs (28x28, flattened) and {CLASSES} outputs"
        )


def load_model(path: str | os.PathLike):
    """Load a `.keras` model safely and check that obd supports it.

    The archive is checked before Keras reads it (`obd.core.modelcheck.check_keras_file`: sizes, zip structure,
    allowed layers only, no code or custom objects, no links in the weights) and then loaded with safe_mode=True:
    no code from the file is ever run and Keras builds nothing over obd's caps.

    Args:
        path: a Keras 3 `.keras` file holding an MLP of Dense layers, 784 inputs and 10 outputs, at most
            obd.core.modelcheck's caps (file size, layers, units, parameters).

    Returns:
        The Keras model (not compiled).

    Raises:
        ModelFileError: missing, empty, too large, corrupt, unsafe (Lambda/custom objects) or unsupported
            models; the message says what was wrong and what is supported.
    """
    p = Path(path).expanduser()
    check_keras_file(p)
    try:
        model = keras.saving.load_model(p, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for bad archives; all mean the same to a user
        raise refuse(p, f"could not load it as a Keras model ({reason(e)})") from None
    _check_supported(model, p)
    return model


def save_model(model, path: str | os.PathLike) -> Path:
    """Save weights and architecture (no optimizer state) to a .keras file atomically.

    Args:
        model: a Keras model.
        path: destination ending in `.keras`.

    Returns:
        The destination path.

    Raises:
        ValueError: when the path does not end in `.keras`.
    """
    p = Path(path).expanduser()
    if p.suffix != ".keras":
        raise ValueError(f"model files must end in .keras, got {p.name!r}")
    p.parent.mkdir(parents=True, exist_ok=True)
    # A copy rebuilt from the config is never compiled, so it carries no optimizer state (15 MB, not 45);
    # clone_model would copy the optimizer along.
    clone = model.__class__.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    atomic_write(p, clone.save)
    return p


def trained_model(
    spec: ModelSpec = ModelSpec(),
    config: TrainConfig = TrainConfig(),
    data: Mnist | None = None,
    progress: ProgressFn | None = None,
    stop: Callable[[], bool] | None = None,
):
    """Load the cached model for (spec, config), training and caching it first when needed.

    A missing or corrupt cache file is (re)trained; the new file replaces it atomically, and the Network's
    `.npz` is written beside it so that `obd.core.files.cached_network` opens it without TensorFlow.

    Args:
        spec: architecture.
        config: training settings (part of the cache key).
        data: MNIST (loaded with `load_mnist()` if None and training is needed).
        progress: training progress callback.
        stop: `train`'s: asked during the training, which it can end early.

    Returns:
        (model, path, trained_now): the Keras model, its cache file, and whether it was trained in this call.

    Raises:
        TrainingStopped: when `stop` ended the training; nothing was written to the cache.
    """
    path = cache_path(spec, config)
    if path.is_file():
        try:
            return load_model(path), path, False
        except ModelFileError:
            pass  # a corrupt cache entry is simply retrained
    model = build_model(spec, config.seed)
    started = time.perf_counter()
    train(model, data if data is not None else load_mnist(), config, progress, stop=stop)
    save_model(model, path)
    save_network(from_keras(model), network_path(path))  # after the .keras: obd.core.files.cached_network's rule
    _write_meta(path, spec, config, time.perf_counter() - started)
    return model, path, True


def _write_meta(path: Path, spec: ModelSpec, config: TrainConfig, seconds: float) -> None:
    meta = {"spec": asdict(spec), "train": asdict(config), "train_seconds": round(seconds, 1)}
    atomic_write(path.with_suffix(".json"), lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))


def default_model(preset: str = DEFAULT_PRESET, progress: ProgressFn | None = None, data: Mnist | None = None):
    """The cached, trained model of a preset with the default training settings (trains it the first time).

    Returns:
        The Keras model.
    """
    return trained_model(preset_spec(preset), preset_train_config(preset), data, progress)[0]
