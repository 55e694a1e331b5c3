"""`python -m obd` given bad input: one plain line `obd: error: ...` on stderr, exit 2 for bad usage and 1 for a
bad file, and nothing written. Every argument's own checks are tried with their bad values; a bad model file and
a broken MNIST file once per command (the file checks themselves are tested in tests/training/test_model_files.py
and tests/core/test_data.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from obd import cli
from obd.core.config import ModelSpec
from obd.methods.registry import METHODS
from obd.training.model import build_model, save_model

ROOT = Path(__file__).resolve().parents[2]


def _cli(argv: list[str], capfd) -> tuple[int, str]:
    """Run `python -m obd` in this process (TensorFlow is already loaded); returns (exit code, stderr)."""
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as e:  # argparse errors exit from inside parse_args
        code = e.code
    return code, capfd.readouterr().err


def assert_one_line_error(code: int, err: str, *fragments: str, exit: int = cli.USAGE_ERROR) -> str:
    """One `obd: error:` line holding every fragment, and the exit code: 2 for bad usage, 1 for a bad file."""
    assert code == exit, (code, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obd: error: "), err
    assert all(f in lines[0] for f in fragments), lines[0]
    return lines[0]


# one bad file per command proves it calls the file checks (tests/training/test_model_files.py tries every kind);
# the process test below runs the other pair
@pytest.mark.parametrize("command, name", [("sweep", "lambda"), ("bench", "truncated_tail")])
def test_cli_refuses_bad_model_files_with_one_line_and_exit_1(command, name, bad_files, empty_cache, markers, capfd):
    bad = bad_files[name]
    code, err = _cli([command, "--model", bad.path, "--modes", "weight", "--sparsities", "50"], capfd)
    assert_one_line_error(code, err, bad.wrong, bad.supported, exit=cli.FILE_ERROR)
    assert not any(m.exists() for m in markers.values())
    assert not empty_cache.exists(), "nothing written to the cache (no default model trained instead)"


@pytest.mark.parametrize("command, name", [("sweep", "truncated_tail"), ("bench", "lambda")])
def test_cli_process_prints_only_the_one_line(command, name, bad_files, tmp_path, markers):
    """The real process: TensorFlow's start-up noise must not bury the message."""
    env = dict(os.environ, OBD_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run(
        [sys.executable, "-m", "obd", command, "--model", str(bad_files[name].path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert_one_line_error(r.returncode, r.stderr, bad_files[name].wrong, exit=cli.FILE_ERROR)
    assert r.stdout == "" and not (tmp_path / "cache").exists()
    assert not any(m.exists() for m in markers.values())


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    """A tiny untrained model: should a bad argument slip through, the command still ends in seconds."""
    return save_model(build_model(ModelSpec((4,), True)), tmp_path_factory.mktemp("cli") / "m.keras")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sparsities=-5"], "'-5' is out of range; give sparsities in percent, 0-100"),
        (["--sparsities", "100.5"], "'100.5' is out of range"),
        (["--sparsities", "inf"], "'inf' is out of range"),
        (["--sparsities", "1e400"], "'1e400' is out of range"),
        (["--sparsities", ""], "'' is not a number; give sparsities in percent, 0-100"),
        (["--sparsities", "50%"], "'50%' is not a number"),
        (["--sparsities"], "--sparsities: expected at least one argument"),
        (["--modes", "Weight"], "invalid choice: 'Weight' (choose from 'weight', 'unit')"),
        (["--modes", ""], "invalid choice: ''"),
        (["--methods", "magic"], "invalid choice: 'magic' (choose from " + ", ".join(map(repr, METHODS)) + ")"),
        (["--budget", "world"], "invalid choice: 'world' (choose from 'layer', 'global', 'loss-aware')"),
        (["--finetune-epochs", "nan"], "'nan': expected a number from 0 to 100"),
        (["--finetune-epochs", "-1"], "'-1': expected a number from 0 to 100"),
        (["--finetune-epochs", "101"], "'101': expected a number from 0 to 100"),
        (["--finetune-epochs", "two"], "'two': expected a number from 0 to 100"),
        (["--calib", "0"], "'0': expected a whole number of at least 1"),
        (["--calib", "1.5"], "'1.5': expected a whole number of at least 1"),
        (["--calib", "70000"], "'70000': MNIST has 60000 training images; give at most 60000"),
        (["--preset", "huge"], "invalid choice: 'huge'"),
        (["--csv", "/nonexistent/out.csv"], "'/nonexistent/out.csv': the folder '/nonexistent' does not exist"),
    ],
)
def test_bad_sweep_arguments(args, message, cli_model, empty_cache, capfd):
    code, err = _cli(["sweep", "--model", cli_model, "--sparsities", "50", "--modes", "weight", *args], capfd)
    assert_one_line_error(code, err, message)
    assert not empty_cache.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sparsities", "101"], "'101' is out of range; give sparsities in percent, 0-100"),
        (["--sparsities", "nan"], "'nan' is out of range"),
        (["--modes", "filter"], "invalid choice: 'filter'"),
        (["--batch", "0"], "'0': expected a whole number of at least 1"),
        (["--batch", "20000"], "'20000': batch sizes go up to 10000 (the MNIST test set)"),
        (["--batch", "1e3"], "'1e3': expected a whole number of at least 1"),
        (["--repeats", "0"], "'0': expected a whole number of at least 1"),
        (["--json", "/nonexistent/b.json"], "'/nonexistent/b.json': the folder '/nonexistent' does not exist"),
    ],
)
def test_bad_bench_arguments(args, message, cli_model, empty_cache, capfd):
    code, err = _cli(
        [
            "bench",
            "--model",
            cli_model,
            "--sparsities",
            "50",
            "--modes",
            "weight",
            "--batch",
            "1",
            "--repeats",
            "1",
            *args,
        ],
        capfd,
    )
    assert_one_line_error(code, err, message)
    assert not empty_cache.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hidden", ""], "'': give hidden sizes as whole numbers, e.g. 1000,1000"),
        (["--hidden", "64,,32"], "give hidden sizes as whole numbers"),
        (["--hidden", "1e3"], "give hidden sizes as whole numbers"),
        (["--hidden=-5"], "each hidden size must be between 1 and 8192, got [-5]"),
        (["--hidden", "9000"], "each hidden size must be between 1 and 8192"),
        (["--epochs", "nan"], "'nan': expected a number greater than 0"),
        (["--epochs", "inf"], "'inf': expected a number greater than 0"),
        (["--epochs", "0"], "'0': expected a number greater than 0"),
        (["--epochs", "1e9"], "epochs must be a number in (0, 100], got 1000000000.0"),
        (["--batch-size", "0"], "'0': expected a whole number of at least 1"),
        (["--batch-size", "70000"], "batch_size must be a whole number in [1, 60000], got 70000"),
        (["--limit", "0"], "'0': expected a whole number of at least 1"),
        (["--seed", "abc"], "invalid int value: 'abc'"),
        (["--seed=-1"], "seed must be a whole number in [0, 2**32), got -1"),
        (["--out", "model.h5"], "argument --out: 'model.h5': model files must end in .keras"),
    ],
)
def test_bad_train_arguments(args, message, tmp_path, empty_cache, capfd):
    out = tmp_path / "out.keras"
    code, err = _cli(["train", "--hidden", "4", "--epochs", "0.01", "--limit", "10", "--out", out, *args], capfd)
    assert_one_line_error(code, err, message)
    assert not out.exists() and not empty_cache.exists()


@pytest.mark.parametrize("name", ["truncated_tail", "pickle"])
def test_the_cli_names_a_broken_mnist_file(name, bad_mnist, cli_model, monkeypatch, empty_cache, capfd):
    path, message = bad_mnist[name]
    monkeypatch.setenv("OBD_MNIST_PATH", str(path))
    code, err = _cli(["sweep", "--model", cli_model, "--sparsities", "50"], capfd)
    assert_one_line_error(code, err, str(path.resolve()), message, exit=cli.FILE_ERROR)
    assert not empty_cache.exists()
