"""Command line: `python -m obd train | sweep | bench | warm | export`.

Exit codes: 0 done; 2 a usage error (bad arguments or values), in argparse's one line `obd: error: ...`; 1 a bad
model or data file (or one that cannot be written), in one plain line `obd: error: ...`; 1 an unexpected
internal error, in one line saying it is a bug (its traceback too when the environment sets OBD_DEBUG=1).
TensorFlow is imported only after the arguments and a `--model` file are checked, so mistakes are reported at
once and a hostile model file is refused before any library builds it.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from obd.core.config import PRESETS, ModelSpec
from obd.core.data import DataError
from obd.core.files import ModelFileError
from obd.core.modelcheck import check_keras_file, reason

USAGE_ERROR, FILE_ERROR, INTERNAL_ERROR = 2, 1, 1
DEBUG_ENV = "OBD_DEBUG"  # set to 1: an internal error prints its traceback as well


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, no usage dump
        self.exit(USAGE_ERROR, f"obd: error: {message}\n")


def percent(text: str) -> float:
    """argparse type: a sparsity in percent (0-100) -> a fraction."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give sparsities in percent, 0-100") from None
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is out of range; give sparsities in percent, 0-100")
    return value / 100


def hidden_sizes(text: str) -> tuple[int, ...]:
    """argparse type: "1000,1000,500" -> (1000, 1000, 500)."""
    try:
        sizes = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give hidden sizes as whole numbers, e.g. 1000,1000") from None
    try:
        ModelSpec(sizes)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return sizes


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number greater than 0")
    return value


def positive_int(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return value


def report_file(text: str) -> str:
    """argparse type: a file written at the end of a run; its folder must exist, checked before the run."""
    folder = Path(text).expanduser().parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r}: the folder {str(folder)!r} does not exist")
    return text


def model_file(text: str) -> str:
    """argparse type: where `train --out` saves a model; checked before training, not after it."""
    if Path(text).suffix != ".keras":
        raise argparse.ArgumentTypeError(f"{text!r}: model files must end in .keras")
    return text


def scheduler_arg(text: str) -> str:
    """argparse type: a Dask scheduler address, tcp://host:port."""
    from obd.work.jobs import check_scheduler

    try:
        return check_scheduler(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def say(message: str) -> None:
    """Progress and status go to stderr, so stdout stays clean for tables."""
    print(message, file=sys.stderr, flush=True)


def training_printer() -> Callable:
    """A train progress callback printing a line at every 10 % of the run."""
    shown = {-1}

    def show(p) -> None:
        tenth = p.step * 10 // p.steps
        if tenth not in shown:
            shown.add(tenth)
            say(
                f"  training: epoch {p.epoch}/{p.epochs}, {100 * p.step // p.steps:3d} %, "
                f"loss {p.loss:.4f}, accuracy {100 * p.accuracy:.2f} %"
            )

    return show


def finetune_printer() -> Callable:
    """A fine-tuning progress callback printing a line at every quarter of each pruning stage's training, for every
    fine-tuned point (a point whose training starts again from its first batch is a new one)."""
    shown: set[tuple[float, int, int]] = set()
    last = [0]  # the batches done when the previous report came

    def show(p) -> None:
        if p.step < last[0]:  # the next point's training
            shown.clear()
        last[0] = p.step
        quarter = (p.sparsity, p.stage, p.step * 4 // p.steps)
        if quarter not in shown:
            shown.add(quarter)
            say(
                f"    fine-tuning at {100 * p.sparsity:g} %: step {p.stage}/{p.stages}, "
                f"{100 * p.step // p.steps:3d} %, loss {p.loss:.4f}, accuracy {100 * p.accuracy:.2f} %"
            )

    return show


def load_or_default(model_path: str | None, preset: str):
    """The Keras model at `model_path`, or the cached default model of `preset` (trained if needed)."""
    from obd.training.model import default_model, load_model

    if model_path:
        return load_model(model_path)
    say(f"using the cached default model (preset {preset}); the first run trains it")
    return default_model(preset, progress=training_printer())


def network_or_default(model_path: str | None, preset: str):
    """The Network of the .keras model at `model_path` on the pixels it takes (said on stderr; `fit_pixels` chooses
    on training images for a model without its own Rescaling/Normalization), or the cached default model's."""
    from obd.core.data import load_mnist
    from obd.core.network import from_keras
    from obd.runtime.evaluate import fit_pixels

    net = from_keras(load_or_default(model_path, preset))  # the file first: a bad one is refused before MNIST loads
    if model_path:
        net = fit_pixels(net, load_mnist())
        say(f"{Path(model_path).name}: {'-'.join(map(str, net.sizes))}, fed {net.describe_input()}")
    return net


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model and --preset, shared by every subcommand that works on a trained model."""
    p.add_argument("--model", metavar="PATH", help="a .keras model (default: the cached default model)")
    p.add_argument(
        "--preset",
        default="challenge",
        choices=list(PRESETS),
        help="preset of the default model when --model is not given (default: challenge)",
    )


def _cmd_train(args: argparse.Namespace) -> int:
    from obd.core.data import load_mnist
    from obd.core.network import from_keras
    from obd.runtime.evaluate import evaluate
    from obd.training.model import ModelSpec, TrainConfig, build_model, preset_spec, save_model, train, trained_model

    spec = preset_spec(args.preset)
    if args.hidden:
        spec = ModelSpec(args.hidden, spec.use_bias)
    config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, train_limit=args.limit)
    data = load_mnist()
    start = time.perf_counter()
    say(f"training {'-'.join(map(str, (784,) + spec.hidden + (10,)))} for {args.epochs:g} epochs")
    if args.out:
        model = build_model(spec, config.seed)
        train(model, data, config, training_printer())
        path = save_model(model, args.out)
    else:
        model, path, _ = trained_model(spec, config, data, training_printer())
    ev = evaluate(from_keras(model), data.x_test, data.y_test)
    print(
        f"test accuracy {100 * ev.accuracy:.2f} %, loss {ev.loss:.4f}, "
        f"{time.perf_counter() - start:.1f} s; saved {path}"
    )
    return 0


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (0 = off)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a number from 0 to 100")
    return value


def calib_size(text: str) -> int:
    """argparse type: a calibration sample size, 1 to 60,000 training images."""
    value = positive_int(text)
    if value > 60_000:
        raise argparse.ArgumentTypeError(f"{text!r}: MNIST has 60000 training images; give at most 60000")
    return value


def _cmd_sweep(args: argparse.Namespace) -> int:
    from obd.core.data import load_mnist
    from obd.methods.registry import NEEDS_CALIBRATION, calibration
    from obd.work.sweep import sweep, sweep_pairs, to_csv

    sweep_pairs(args.methods, args.modes, args.finetune_epochs, args.gradual_steps, args.budget)  # before training

    net = network_or_default(args.model, args.preset)  # before MNIST: a bad model file is refused, nothing written
    data = load_mnist()
    calib = calibration(data, args.calib) if set(NEEDS_CALIBRATION) & set(args.methods) else None

    def show(step) -> None:
        tuned = f", fine-tuned {step.finetune_epochs:g} epochs" if step.finetune_epochs else ""
        tuned += f" in {step.gradual_steps} pruning steps" if step.gradual_steps > 1 else ""
        say(f"  [{step.done + 1}/{step.total}] {step.method} {step.mode} pruning at {100 * step.sparsity:g} %{tuned}")

    records = sweep(
        net,
        args.sparsities,
        args.modes,
        x=data.x_test,
        y=data.y_test,
        prune_output=args.prune_output,
        progress=show,
        methods=args.methods,
        budget=args.budget,
        calib=calib,
        finetune_epochs=args.finetune_epochs,
        train_data=data,
        gradual_steps=args.gradual_steps,
        train_progress=finetune_printer(),
        scheduler=args.scheduler,
    )
    detail = args.methods != ["magnitude"] or args.finetune_epochs > 0  # the plain table stays as it was
    print(
        f"{'mode':<8}{'sparsity':>10}{'accuracy':>10}{'loss':>9}{'kept weights':>14}"
        + (f"{'method':>11}{'ft epochs':>11}{'steps':>7}{'seconds':>9}" if detail else "")
    )
    for r in records:
        method = r.method + ("*" if r.fallback else "")
        print(
            f"{r.mode:<8}{100 * r.sparsity:>9.0f}%{100 * r.accuracy:>9.2f}%{r.loss:>9.4f}{r.kept_weights:>14,}"
            + (f"{method:>11}{r.finetune_epochs:>11g}{r.gradual_steps:>7}{r.seconds:>9.2f}" if detail else "")
        )
    if any(r.fallback for r in records):
        print("* found nothing better than magnitude on the validation images here: the point is magnitude's network")
    if args.csv:
        Path(args.csv).write_text(to_csv(records))
        say(f"wrote {args.csv}")
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import json

    from obd.core.data import load_mnist
    from obd.runtime.bench import bench, machine, table

    net = network_or_default(args.model, args.preset)  # before MNIST, as in sweep
    data = load_mnist()
    records = bench(
        net,
        data.x_test,
        args.modes,
        args.sparsities,
        args.batch,
        args.repeats,
        args.prune_output,
        progress=lambda line: say(f"  {line}"),
    )
    say(f"timed on {machine()}")
    print(table(records))
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
        say(f"wrote {args.json}")
    return 0


def _bench_batch(text: str) -> int:
    """argparse type: a batch size between 1 and the 10,000 MNIST test images the benchmark runs on."""
    value = positive_int(text)
    if value > 10_000:
        raise argparse.ArgumentTypeError(f"{text!r}: batch sizes go up to 10000 (the MNIST test set)")
    return value


def _add_modes_and_sparsities(p: argparse.ArgumentParser, sparsities: list[float], shown: str) -> None:
    """`--modes` (both by default) and `--sparsities` in percent (default `sparsities`, fractions, shown as
    `shown`): the grid of a bench or a sweep."""
    from obd.core.pruning import MODES

    p.add_argument("--modes", nargs="+", default=list(MODES), choices=list(MODES))
    p.add_argument(
        "--sparsities",
        nargs="+",
        type=percent,
        metavar="PCT",
        default=sparsities,
        help=f"sparsities in percent (default {shown})",
    )


def _add_bench(sub) -> None:
    """`bench`: latency of the dense, shrunk and sparse engines against sparsity (obd/runtime/engines.py)."""
    p = sub.add_parser("bench", help="latency of the dense, shrunk and sparse inference engines")
    add_model_args(p)
    _add_modes_and_sparsities(p, [0, 0.5, 0.8, 0.9, 0.95, 0.99], "0 50 80 90 95 99")
    p.add_argument(
        "--batch", nargs="+", type=_bench_batch, default=[1, 10_000], metavar="N", help="batch sizes (default 1 10000)"
    )
    p.add_argument("--repeats", type=positive_int, default=5, help="timed pairs per reading, at least (default 5)")
    p.add_argument("--prune-output", action="store_true", help="prune the logits layer too")
    p.add_argument(
        "--json", metavar="PATH", type=report_file, help="write the records as a JSON list (sparsity as a fraction)"
    )
    p.set_defaults(func=_cmd_bench)


def _cmd_warm(args: argparse.Namespace) -> int:
    from obd.work.warm import warm_curves, warm_speed

    net = network_or_default(args.model, args.preset)
    start = time.perf_counter()
    say(f"warming the cache for {'-'.join(map(str, net.sizes))} ({net.fingerprint()})")
    parts = warm_curves(net, args.methods, prune_output=args.prune_output, scheduler=args.scheduler, progress=say)
    curves_s = time.perf_counter() - start
    parts += warm_speed(net, args.batch, prune_output=args.prune_output, progress=say)
    print(f"{'part':<44}{'seconds':>9}  status")
    for part in parts:
        status = "cached" if part.cached else f"failed: {part.error}" if part.error else "computed"
        print(f"{part.name:<44}{part.seconds:>9.1f}  {status}")
    print(
        f"curves {curves_s:.1f} s, speed tables {time.perf_counter() - start - curves_s:.1f} s, "
        f"total {time.perf_counter() - start:.1f} s"
    )
    return 1 if any(part.error for part in parts) else 0


def _add_warm(sub) -> None:
    """`warm`: compute everything a lecture needs into the cache ahead (obd/work/warm.py)."""
    from obd.methods.registry import METHODS
    from obd.work.warm import SPEED_BATCHES

    p = sub.add_parser("warm", help="compute every curve and speed table the dashboard shows into the cache")
    add_model_args(p)
    p.add_argument(
        "--methods",
        nargs="+",
        default=list(METHODS),
        choices=list(METHODS),
        help="the methods whose curves to compute, both modes and budgets (default: all)",
    )
    p.add_argument("--prune-output", action="store_true", help="prune the logits layer too")
    p.add_argument(
        "--batch",
        nargs="*",
        type=_bench_batch,
        default=list(SPEED_BATCHES),
        metavar="N",
        help="batch sizes of the speed tables (default 1 100 10000; none: no speed tables)",
    )
    p.add_argument(
        "--scheduler",
        type=scheduler_arg,
        metavar="ADDRESS",
        help="compute the curves on a Dask cluster, e.g. tcp://10.0.0.5:8786 (speed tables are always "
        "timed on this machine)",
    )
    p.set_defaults(func=_cmd_warm)


def _cmd_export(args: argparse.Namespace) -> int:
    from obd.core.cache import atomic_write
    from obd.core.data import load_mnist
    from obd.methods.registry import NEEDS_CALIBRATION, calibration, prune_with
    from obd.runtime.evaluate import evaluate
    from obd.training.finetune import finetune
    from obd.work import export

    net = network_or_default(args.model, args.preset)
    data = load_mnist()
    calib = calibration(data) if args.method in NEEDS_CALIBRATION or args.budget == "loss-aware" else None
    say(f"pruning {100 * args.sparsity:g} % of the {args.mode}s by {args.method} ({args.budget} budget)")
    pruned = prune_with(net, args.sparsity, args.mode, args.method, args.budget, args.prune_output, calib)
    if args.finetune_epochs > 0:
        pruned = finetune(pruned, data, args.finetune_epochs, finetune_printer())
    ev = evaluate(pruned.net, data.x_test, data.y_test)
    kept = int(sum(m.sum() for m in pruned.masks))
    print(f"pruned: test accuracy {100 * ev.accuracy:.2f} %, {kept:,} of {net.n_weights:,} weights kept")
    out = Path(args.out).expanduser()
    if out.suffix == ".tflite":
        made = export.tflite_model(pruned)
        run = export.tflite_runner(made, len(data.x_test))
        hits = run(export.user_inputs(pruned.net, data.x_test)).argmax(axis=1) == data.y_test
        print(f"TFLite: test accuracy {100 * hits.mean():.2f} % in TFLite's interpreter")
        dense = export.tflite_model(net)
        for batch in (1, 100):  # against the unpruned network's TFLite model, in the same interpreter
            t = export.tflite_speedup(dense, made, export.user_inputs(net, data.x_test[:batch]))
            print(f"TFLite: {t['speedup']:.2f}x the dense TFLite model's speed at batch {batch} ({t['ms']:.3f} ms)")
    else:
        made = (export.shrunk_model if args.shrink else export.masked_model)(pruned)
    atomic_write(out, lambda tmp: Path(tmp).write_bytes(made))
    shape, scale = pruned.net.input_shape or (pruned.net.sizes[0],), "0-255" if pruned.net.pixels != 1 else "[0, 1]"
    say(f"wrote {out} ({len(made) / 2**20:.2f} MB); it takes inputs of shape {shape}, pixels in {scale}")
    return 0


def export_file(text: str) -> str:
    """argparse type: where `export --out` writes: a .keras or .tflite file in an existing folder."""
    if Path(text).suffix not in (".keras", ".tflite"):
        raise argparse.ArgumentTypeError(f"{text!r}: exports end in .keras (Keras) or .tflite (TensorFlow Lite)")
    return report_file(text)


def _add_export(sub) -> None:
    """`export`: prune a model and save it for use outside obd (obd/work/export.py)."""
    from obd.core.pruning import BUDGETS, MODES
    from obd.methods.registry import METHODS

    p = sub.add_parser("export", help="prune a model and save it as .keras (masked or shrunk) or .tflite")
    add_model_args(p)
    p.add_argument("--sparsity", type=percent, required=True, metavar="PCT", help="sparsity in percent")
    p.add_argument("--mode", default="weight", choices=list(MODES), help="weight or unit pruning (default weight)")
    p.add_argument("--method", default="magnitude", choices=list(METHODS), help="criterion (default magnitude)")
    p.add_argument("--budget", default="layer", choices=list(BUDGETS), help="sparsity split (default layer)")
    p.add_argument("--prune-output", action="store_true", help="prune the logits layer too")
    p.add_argument(
        "--finetune-epochs", type=non_negative_float, default=0.0, metavar="E", help="fine-tune E epochs first"
    )
    p.add_argument("--shrink", action="store_true", help=".keras: remove dead units (.tflite always does)")
    p.add_argument(
        "--out", required=True, type=export_file, metavar="PATH", help="a .keras or .tflite file (TensorFlow Lite)"
    )
    p.set_defaults(func=_cmd_export)


def build_parser() -> argparse.ArgumentParser:
    """The `python -m obd` argument parser with every subcommand."""
    from obd.core.pruning import BUDGETS
    from obd.methods.registry import CALIBRATION_SIZE, METHODS
    from obd.work.sweep import DEFAULT_SPARSITIES

    parser = _Parser(prog="python -m obd", description="obd: prune Keras MLPs on MNIST and measure the result")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{train,sweep,bench,warm,export}")

    p = sub.add_parser("train", help="train a model (cached by settings, or saved to --out)")
    p.add_argument("--preset", default="challenge", choices=list(PRESETS))
    p.add_argument("--hidden", type=hidden_sizes, help="custom hidden sizes, e.g. 1000,1000")
    p.add_argument("--epochs", type=positive_float, default=5.0, help="epochs, fractions allowed (default 5)")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit", type=positive_int, help="train on the first N training images only")
    p.add_argument("--out", metavar="PATH", type=model_file, help="save the model here (.keras) instead of the cache")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("sweep", help="accuracy and loss at many sparsities, per pruning mode")
    add_model_args(p)
    _add_modes_and_sparsities(p, list(DEFAULT_SPARSITIES), "0 25 50 ... 99")
    p.add_argument("--prune-output", action="store_true", help="prune the logits layer too")
    p.add_argument("--csv", metavar="PATH", type=report_file, help="write the records as CSV (sparsity as a fraction)")
    p.add_argument(
        "--methods",
        nargs="+",
        default=["magnitude"],
        choices=list(METHODS),
        help="pruning criteria (default: magnitude; sparsegpt prunes weights only, its unit runs are skipped)",
    )
    p.add_argument(
        "--budget",
        default="layer",
        choices=list(BUDGETS),
        help="sparsity per layer, one threshold across layers, or loss-aware: the split between layers "
        "that least raises the calibration loss (not for random; default: layer)",
    )
    p.add_argument(
        "--finetune-epochs",
        type=non_negative_float,
        default=0.0,
        metavar="E",
        help="also fine-tune every point for E epochs with its masks fixed (default 0: one-shot)",
    )
    p.add_argument(
        "--gradual-steps",
        type=positive_int,
        default=1,
        metavar="S",
        help="with --finetune-epochs: prune in S steps towards each sparsity (tfmot's PolynomialDecay), "
        "fine-tuning E/S epochs between them (magnitude, random, obd; default 1: prune once)",
    )
    p.add_argument(
        "--calib",
        type=calib_size,
        default=CALIBRATION_SIZE,
        metavar="N",
        help=f"training images for obd/obs calibration (default {CALIBRATION_SIZE})",
    )
    p.add_argument(
        "--scheduler",
        type=scheduler_arg,
        metavar="ADDRESS",
        help="run the points on a Dask cluster, e.g. tcp://10.0.0.5:8786 (its workers need obd and MNIST; "
        "progress is then shown as points finish; default: in this process)",
    )
    p.set_defaults(func=_cmd_sweep)
    _add_bench(sub)
    _add_warm(sub)
    _add_export(sub)
    return parser


def import_tensorflow_quietly() -> None:
    """Import Keras with stderr closed at the file-descriptor level.

    TensorFlow's C++ runtime prints start-up notices (oneDNN, CPU features) before its logging is set up,
    so TF_CPP_MIN_LOG_LEVEL cannot hide them; they would bury the CLI's one-line messages. Python errors
    raised by the import still surface, after stderr is restored.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import keras  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see the module docstring: 0 done, 1 a bad file or a bug, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    # obd's own warnings (a pruning that empties a layer) as one line each, not Python's file:line form
    warnings.showwarning = lambda message, category, *_: say(f"obd: warning: {message}")
    try:
        if getattr(args, "model", None):
            check_keras_file(args.model)  # without TensorFlow: refused before anything is built
        import_tensorflow_quietly()
        return args.func(args)
    except (ModelFileError, DataError, OSError) as e:  # a model or MNIST file, or a path that cannot be written
        print(f"obd: error: {e}", file=sys.stderr)
        return FILE_ERROR
    except ValueError as e:  # a value the arguments' types let through that the run refuses: usage
        print(f"obd: error: {e}", file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        return 130
    except Exception as e:
        if os.environ.get(DEBUG_ENV) == "1":
            traceback.print_exc()
        where = "" if os.environ.get(DEBUG_ENV) == "1" else f"; set {DEBUG_ENV}=1 to see the traceback"
        print(
            f"obd: internal error (a bug in obd, please report it): {type(e).__name__}: {reason(e)}{where}",
            file=sys.stderr,
        )
        return INTERNAL_ERROR
