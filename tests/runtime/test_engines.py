"""Inference engines: every engine gives the masked network's logits, shrink removes exactly the dead units,
the exports load and predict the same, auto picks a valid engine, and bench/CLI records have the right form.

Real MNIST test images and small real trained models; timings are never asserted here (see
benchmarks/speed.py for the speed targets).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time

import numpy as np
import pytest
from cli_runner import run_cli

from obd.core.network import InputNorm, Layer, Network, from_keras, to_keras
from obd.core.pruning import prune
from obd.figures.plots import NOISY_LEGEND, speed_figure, speed_reading
from obd.runtime.bench import bench, table
from obd.runtime.engines import KINDS, build_engine, choose_kind
from obd.runtime.latency import Readings
from obd.runtime.shrunk import ideal_speedup, input_density, nonzero_weights, shrink, sparse_input
from obd.training.model import ModelSpec, TrainConfig, build_model, load_model, save_model, train
from obd.work.export import save_shrunk, save_sparse

RTOL = 1e-5  # float32 sums of <= 784 products, in another order than BLAS's


def assert_logits_close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal within float32 tolerance: 1e-5 relative, plus 1e-5 of the largest logit absolute."""
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * max(1.0, float(np.abs(want).max())))


@pytest.fixture(scope="module")
def nobias_net(mnist) -> Network:
    """A bias-free 784-96-48-10 MLP (the default model's kind) trained on 5,000 real images."""
    model = build_model(ModelSpec((96, 48), use_bias=False), seed=1)
    train(model, mnist, TrainConfig(epochs=1, batch_size=64, train_limit=5000, seed=1))
    return from_keras(model)


@pytest.fixture(scope="module")
def x_test(mnist) -> np.ndarray:
    return mnist.x_test[:700]  # 10 full tiles of 64 rows and a partial one


@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("mode", ["weight", "unit"])
@pytest.mark.parametrize("prune_output", [False, True])
@pytest.mark.parametrize("which", ["small_net", "nobias_net"])
def test_every_engine_gives_the_masked_networks_logits(which, prune_output, mode, sparsity, x_test, request):
    net = request.getfixturevalue(which)
    pruned = prune(net, sparsity, mode, prune_output).net
    for batch in (1, 5, 20, len(x_test)):  # rows, rows, one padded tile, 10 tiles and a partial one
        x = x_test[:batch]
        want = pruned.logits(x)
        for kind in KINDS:
            engine = build_engine(pruned, kind, batch_size=batch)
            assert_logits_close(engine.logits(x), want)


@pytest.mark.parametrize("mode, sparsity", [("weight", 0.9), ("unit", 0.5), ("weight", 0.0)])
def test_engines_match_the_keras_model(small_net, x_test, mode, sparsity):
    pruned = prune(small_net, sparsity, mode).net
    keras_logits = np.asarray(to_keras(pruned)(x_test, training=False))
    for kind in ("dense", "shrunk", "sparse"):
        np.testing.assert_allclose(
            build_engine(pruned, kind).logits(x_test),
            keras_logits,
            rtol=1e-4,
            atol=1e-4 * float(np.abs(keras_logits).max()),
        )  # Keras: oneDNN's order


@pytest.mark.parametrize("prune_output", [False, True])
def test_shrink_removes_exactly_the_pruned_units(small_net, prune_output):
    pruned = prune(small_net, 0.5, "unit", prune_output)
    small = shrink(pruned.net)
    assert small.sizes == (784, 64, 32, 10), "input features and classes stay"
    for i, (layer, big, mask) in enumerate(zip(small.layers, pruned.net.layers, pruned.masks)):
        rows = np.ones(784, bool) if i == 0 else pruned.masks[i - 1].any(axis=0)
        cols = mask.any(axis=0) if i < len(small.layers) - 1 else np.ones(10, bool)
        np.testing.assert_array_equal(layer.kernel, big.kernel[np.ix_(rows, cols)])
        np.testing.assert_array_equal(layer.bias, big.bias[cols])
    assert nonzero_weights(pruned.net) == sum(np.count_nonzero(k) for k in small.kernels())


def test_shrink_also_drops_units_cut_off_by_weight_pruning():
    rng = np.random.default_rng(0)
    w1 = rng.normal(size=(6, 4)).astype(np.float32)
    w1[:, 1] = 0  # unit 1 gets no input and has no bias: it outputs 0
    w2 = rng.normal(size=(4, 3)).astype(np.float32)
    w2[2] = 0  # unit 2 feeds nothing
    w3 = rng.normal(size=(3, 2)).astype(np.float32)
    net = Network((Layer(w1, None, "relu"), Layer(w2, None, "relu"), Layer(w3, None, "linear")))
    small = shrink(net)
    assert small.sizes == (6, 2, 3, 2)
    x = rng.normal(size=(9, 6)).astype(np.float32)
    assert_logits_close(small.logits(x), net.logits(x))
    assert ideal_speedup(net, net) == pytest.approx(net.n_weights / (6 * 2 + 2 * 3 + 3 * 2))


def test_a_fully_pruned_layer_keeps_one_silent_unit(small_net, x_test):
    pruned = prune(small_net, 1.0, "unit").net
    small = shrink(pruned)
    assert small.sizes == (784, 1, 1, 10)
    assert build_engine(pruned, "shrunk").net.sizes == (784, 16, 16, 10), "narrow layers run padded to 16 units"
    for kind in KINDS:
        assert_logits_close(build_engine(pruned, kind).logits(x_test), pruned.logits(x_test))


@pytest.mark.parametrize("sparsity", [0.0, 0.9, 0.99])
@pytest.mark.parametrize("which", ["small_net", "nobias_net", "mixed_net"])
def test_shrunk_engine_in_row_tiles_on_every_core_gives_the_same_logits(which, sparsity, mnist, request, monkeypatch):
    import scipy.linalg  # noqa: F401  scipy's OpenBLAS as well, whichever test runs first: `counts` holds both

    from obd.runtime import shrunk, threads

    net = request.getfixturevalue(which)
    pruned = prune(net, sparsity, "unit").net
    engine = dataclasses.replace(build_engine(pruned, "shrunk"), narrow=None)  # narrow nets: row tiles all the same
    counts = [lib.num_threads for lib in threads.openblas()]
    for batch, rows in ((shrunk.TILE_MIN_BATCH, shrunk.TILE_ROWS), (3001, 250), (777, 100)):
        monkeypatch.setattr(shrunk, "TILE_MIN_BATCH", min(batch, shrunk.TILE_MIN_BATCH))
        monkeypatch.setattr(shrunk, "TILE_ROWS", rows)  # many tiles, the last one short
        x = mnist.x_test[:batch]
        assert_logits_close(engine.logits(x), pruned.logits(x))
    assert [lib.num_threads for lib in threads.openblas()] == counts, (
        "OpenBLAS gets its thread count back after the call"
    )


@pytest.fixture(scope="module")
def mixed_net(small_net, mnist) -> Network:
    """small_net without its second layer's bias, behind a per-pixel standardization: both kinds of layer and an
    input transform in one net."""
    layers = tuple(
        layer.replace(layer.kernel, None if i == 1 else layer.bias) for i, layer in enumerate(small_net.layers)
    )
    pixels = mnist.x_test.reshape(len(mnist.x_test), -1)
    return Network(layers, input_norm=InputNorm.standardize(pixels.mean(axis=0), pixels.std(axis=0) + 0.1))


@pytest.mark.parametrize(
    "mode, sparsity, units",
    [
        ("unit", 0.99, None),  # 1 unit a layer: one chunk of 16, mostly padding
        ("unit", 0.8, 32),  # small_net: 26 and 13 units, two chunks then one
        ("unit", 0.0, 128),  # the whole net (small_net: 128 and 64 units, 8 and 4 chunks)
        ("weight", 0.5, 128),  # scattered zeros inside the chunks
    ],
)
@pytest.mark.parametrize("which", ["small_net", "nobias_net", "mixed_net"])
def test_narrow_kernel_gives_the_dense_logits(which, mode, sparsity, units, mnist, request, monkeypatch):
    from obd.runtime import shrunk

    if units:
        monkeypatch.setattr(shrunk, "NARROW_UNITS", units)  # the kernel takes any width; speed sets the limit
    net = request.getfixturevalue(which)
    pruned = prune(net, sparsity, mode).net
    engine = build_engine(pruned, "shrunk")
    assert engine.narrow is not None and engine.narrow.sizes.tolist() == list(shrink(pruned).sizes)
    for batch in (1, 7, 100, 2049, 10_000):  # a short group of 8 rows; a short block of 256; every image
        x = mnist.x_test[:batch]
        want = pruned.logits(x)
        assert_logits_close(engine.narrow.logits(pruned.prepare(x)), want)
        assert_logits_close(engine.logits(x), want)  # the narrow kernel from NARROW_MIN_BATCH rows, else matmuls


@pytest.mark.parametrize("which", ["small_net", "nobias_net", "mixed_net"])
def test_sparse_input_kernel_gives_the_first_layers_output_for_any_input(which, mnist, request):
    net = request.getfixturevalue(which)  # mixed_net: the transform folded into the weights, zeros kept zeros
    layer = net.layers[0]
    rng = np.random.default_rng(0)
    images = mnist.x_test[:300]
    for x in (images, np.zeros_like(images[:5]), rng.normal(size=(7, 784)).astype(np.float32)):  # no zero at all
        h = net.prepare(x) @ layer.kernel  # (rows, units)
        if layer.bias is not None:
            h += layer.bias
        assert_logits_close(sparse_input(net)(x), np.maximum(h, 0))
    single = Network(net.layers[-1:])  # a first layer without ReLU (the logits layer), 64 inputs, 10 units
    x = np.maximum(rng.normal(size=(9, single.layers[0].inputs)), 0).astype(np.float32)
    assert_logits_close(sparse_input(single)(x), single.logits(x))


def test_shrunk_engine_skips_zero_inputs_only_in_large_mostly_zero_batches_and_counts_what_it_does(nobias_net, mnist):
    from obd.runtime import latency, shrunk

    class Spy:
        """The engine's first layer, counting the rows it computes."""

        def __init__(self, layer):
            self.layer, self.rows = layer, 0

        def __call__(self, x):
            self.rows += len(x)
            return self.layer(x)

    pruned = prune(nobias_net, 0.5, "unit").net  # 48 and 24 units: too wide for the narrow kernel
    engine = build_engine(pruned, "shrunk")
    spy = Spy(engine.first)
    engine = dataclasses.replace(engine, first=spy)
    x = mnist.x_test[: shrunk.TILE_MIN_BATCH]
    assert 0.1 < input_density(x) < shrunk.SPARSE_INPUT_MAX_DENSITY, "MNIST: most pixels are zero"
    tiles = shrunk.tile_pool() is not None  # row tiles need two cores and a settable OpenBLAS
    for batch, rows in ((x, len(x) if tiles else 0), (x + 0.5, 0), (x[:100], 0)):  # no zero left; a small batch
        spy.rows = 0
        assert_logits_close(engine.logits(batch), pruned.logits(batch))
        assert spy.rows == rows
    small = shrink(pruned)
    assert latency._engine_flops(pruned, "shrunk", x + 0.5) == small.n_weights
    skipped = round((1 - input_density(x)) * small.layers[0].kernel.size) if tiles else 0
    assert latency._engine_flops(pruned, "shrunk", x) == small.n_weights - skipped


def test_only_narrow_nets_run_in_the_narrow_kernel(small_net):
    assert build_engine(prune(small_net, 0.9, "unit").net, "shrunk").narrow is not None, "13 and 7 units"
    assert build_engine(prune(small_net, 0.8, "unit").net, "shrunk").narrow is None, "26 and 13 units"
    assert build_engine(small_net, "shrunk").narrow is None


def test_shrunk_engine_falls_back_to_plain_matmuls_without_a_settable_openblas(small_net, mnist, monkeypatch):
    from obd.runtime import shrunk

    pruned = prune(small_net, 0.5, "unit").net  # 64 and 32 units: too wide for the narrow kernel
    monkeypatch.setattr(shrunk, "tile_pool", lambda: None)  # what a missing library or symbol gives
    x = mnist.x_test[: shrunk.TILE_MIN_BATCH + 1]
    engine = build_engine(pruned, "shrunk")
    assert engine.narrow is None
    assert_logits_close(engine.logits(x), pruned.logits(x))


def test_single_threaded_blas_is_nested_and_gives_the_count_back(monkeypatch):
    from obd.runtime import threads

    count = [4]

    class Lib:  # what threadpoolctl gives for one OpenBLAS
        @property
        def num_threads(self) -> int:
            return count[0]

        def set_num_threads(self, n: int) -> None:
            count[0] = n

    monkeypatch.setattr(threads, "openblas", lambda: (Lib(),))
    with threads.single_threaded_blas():
        with threads.single_threaded_blas():  # a second caller (another thread) meanwhile
            assert count[0] == 1
        assert count[0] == 1, "held while any caller is inside"
    assert count[0] == 4
    with pytest.raises(RuntimeError):
        with threads.single_threaded_blas():
            raise RuntimeError
    assert count[0] == 4, "given back after an error too"


def test_on_every_core_runs_each_task_once_across_threads_and_raises_a_tasks_error(monkeypatch):
    import threading

    from obd.runtime import threads

    for pool in (threads.tile_pool(), None):  # this machine's pool (two cores: one helper), and none
        monkeypatch.setattr(threads, "tile_pool", lambda pool=pool: pool)
        done, names = [0] * 50, set()

        def body(i: int, done: list = done, names: set = names) -> None:
            done[i] += 1
            names.add(threading.current_thread().name)
            time.sleep(0.005)  # long enough for every helper to take some of the 50

        threads.on_every_core(50, body)
        assert done == [1] * 50
        assert names == {threading.current_thread().name} if pool is None else len(names) == pool[1] + 1
        with pytest.raises(ZeroDivisionError):
            threads.on_every_core(8, lambda i: 1 // (i - 5))


def test_shrunk_keras_export_is_smaller_loads_and_predicts_the_same(small_model, small_net, x_test, tmp_path):
    pruned = prune(small_net, 0.75, "unit").net
    dense_path = save_model(to_keras(pruned), tmp_path / "dense.keras")
    path = save_shrunk(pruned, tmp_path / "shrunk.keras")
    assert path.stat().st_size < dense_path.stat().st_size / 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dense.keras", "shrunk.keras"], "no temporary file left"
    loaded = from_keras(load_model(path))
    assert loaded.sizes == (784, 32, 16, 10)
    assert_logits_close(loaded.logits(x_test), pruned.logits(x_test))
    with pytest.raises(ValueError, match=r"\.keras"):
        save_shrunk(pruned, tmp_path / "shrunk.h5")


def test_sparse_export_holds_the_shrunk_kernels_as_csr(small_net, tmp_path):
    pruned = prune(small_net, 0.9, "weight").net
    path = save_sparse(pruned, tmp_path / "sparse.npz")
    with np.load(path, allow_pickle=False) as f:
        for i, layer in enumerate(shrink(pruned).layers):
            kernel_t = np.zeros(f[f"{i}_shape"][::-1], np.float32)  # (units, inputs)
            rows = np.repeat(np.arange(kernel_t.shape[0]), np.diff(f[f"{i}_indptr"]))
            kernel_t[rows, f[f"{i}_indices"]] = f[f"{i}_data"]
            np.testing.assert_array_equal(kernel_t.T, layer.kernel)
            np.testing.assert_array_equal(f[f"{i}_bias"], layer.bias)
    assert [p.name for p in tmp_path.iterdir()] == ["sparse.npz"]


def test_auto_picks_a_valid_engine_by_sparsity_and_batch(nobias_net):
    assert choose_kind(nobias_net, 10_000) == "dense"
    assert choose_kind(prune(nobias_net, 0.5, "unit").net, 10_000) == "shrunk"
    assert choose_kind(prune(nobias_net, 0.5, "weight").net, 10_000) == "dense"
    assert choose_kind(prune(nobias_net, 0.99, "weight").net, 10_000) == "sparse"
    assert choose_kind(prune(nobias_net, 0.99, "weight").net, 1) == "sparse"
    assert build_engine(prune(nobias_net, 0.5, "unit").net).name == "shrunk"
    # a small net (40k weights) goes sparse for batches of tiles only when very sparse; row by row earlier
    assert choose_kind(prune(nobias_net, 0.8, "weight").net, 100) == "dense"
    assert choose_kind(prune(nobias_net, 0.85, "weight").net, 1) == "sparse"
    assert choose_kind(prune(nobias_net, 0.97, "weight").net, 100) == "sparse"
    with pytest.raises(ValueError, match="engine kind must be one of auto, dense, sparse, shrunk"):
        build_engine(nobias_net, "gpu")


@pytest.fixture(scope="module")
def records(small_net, mnist) -> list[dict]:
    return bench(small_net, mnist.x_test, ["weight", "unit"], [0.0, 0.9], [1, 100], repeats=1, readings=Readings())


def test_bench_records_have_the_documented_keys_and_types(records, small_net, mnist):
    assert len(records) == 2 * 2 * 2 * 2  # modes x sparsities x batches x (dense + one engine)
    for r in records:
        assert set(r) == {
            "engine",
            "mode",
            "sparsity",
            "batch",
            "ms",
            "speedup",
            "speedup_low",
            "speedup_high",
            "noisy",
            "note",
            "ideal_speedup",
        }
        assert r["speedup_low"] <= r["speedup"] <= r["speedup_high"] and isinstance(r["noisy"], bool)
        assert r["speedup"] <= 1.2 * r["ideal_speedup"] * (1 + 1e-9)
        assert r["engine"] in ({"dense", "sparse"} if r["mode"] == "weight" else {"dense", "shrunk"})
        assert isinstance(r["batch"], int) and r["sparsity"] in (0.0, 0.9)
        assert all(isinstance(r[k], float) and r[k] > 0 for k in ("ms", "speedup", "ideal_speedup"))
        assert r["ideal_speedup"] >= 1.0
        if r["engine"] == "dense":
            assert r["speedup"] == 1.0
    noisy = any(r["noisy"] for r in records)
    assert "of ideal" in table(records).splitlines()[0] and len(table(records).splitlines()) == 17 + noisy
    with pytest.raises(ValueError, match="batch sizes must be between 1"):
        bench(small_net, mnist.x_test[:10], batches=[100])


def test_bench_claims_no_speed_up_where_nothing_is_pruned_and_marks_held_readings(records):
    for r in records:
        if r["sparsity"] == 0:  # the shrunk or sparse engine of an unpruned net runs the dense net's work
            assert r["speedup"] == 1.0 and r["ideal_speedup"] == 1.0
            assert r["engine"] == "dense" or "nothing pruned" in r["note"]
    held = [dict(r, noisy=i == 1) for i, r in enumerate(records)]  # one held reading, the rest clean
    lines = table(held).splitlines()
    assert lines[2].endswith(" *") and not lines[1].endswith("*") and lines[-1].startswith("* held or noisy")


def test_speed_figure_and_reading_come_from_the_records(records):
    fig = speed_figure(records, batch=100, current=0.9)
    assert [t.name for t in fig.data if t.name != NOISY_LEGEND] == [
        "dense, weight",
        "sparse, weight",
        "ideal, weight",
        "dense, unit",
        "shrunk, unit",
        "ideal, unit",
    ]
    sparse = next(t for t in fig.data if t.name == "sparse, weight")
    assert list(sparse.y) == [r["ms"] for r in records if r["engine"] == "sparse" and r["batch"] == 100]
    reading = speed_reading(records, 0.85, batch=100)
    assert reading.startswith("weight pruning at 85 % (nearest measured: 90 %): ")
    assert "; unit pruning at 85 % (nearest measured: 90 %): " in reading
    assert speed_reading(records, 0.5, batch=7) == "no speed measured at batch 7"


def test_cli_bench_prints_a_table_and_writes_json(small_model, tmp_path):
    model_path = save_model(small_model, tmp_path / "small.keras")
    out = tmp_path / "speed.json"
    r = run_cli(
        "bench",
        "--model",
        model_path,
        "--modes",
        "weight",
        "--sparsities",
        "0",
        "90",
        "--batch",
        "1",
        "64",
        "--repeats",
        "1",
        "--json",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:4] == ["mode", "sparsity", "batch", "engine"]
    assert re.search(r"timed on .+ \(.+\), \d+ cores", r.stderr), "ratios depend on the CPU: say which"
    records = json.loads(out.read_text())
    assert [(x["engine"], x["sparsity"], x["batch"]) for x in records] == [
        (e, k, b) for k in (0.0, 0.9) for b in (1, 64) for e in ("dense", "sparse")
    ]


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "--batch", "0"], "expected a whole number of at least 1"),
        (["bench", "--batch", "20000"], "batch sizes go up to 10000"),
        (["bench", "--sparsities", "101"], "out of range"),
        (["bench", "--modes", "filter"], "invalid choice: 'filter'"),
    ],
)
def test_cli_bench_bad_arguments_give_one_line_and_exit_2(args, message):  # checked before TF loads
    r = run_cli(*args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and message in lines[0], r.stderr
