"""`python -m obd`: train and sweep on a small real model; one-line errors: exit 2 for bad usage, 1 for a bad file
or an internal error (a bug, said so, with its traceback under OBD_DEBUG=1)."""

import csv

import pytest
from cli_runner import run_cli

from benchmarks.hostile_upload import hostile_files
from obd import cli
from obd.core.config import ModelSpec
from obd.core.network import from_keras
from obd.core.pruning import prune
from obd.runtime.evaluate import evaluate
from obd.training.model import build_model, load_model, save_model
from obd.work.sweep import DEFAULT_SPARSITIES


@pytest.fixture(scope="module")
def cli_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "small.keras"
    r = run_cli("train", "--hidden", "64,32", "--epochs", "0.5", "--limit", "3000", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "test accuracy" in r.stdout and out.is_file()
    assert "training: epoch 1/1" in r.stderr, "progress is shown"
    return out


def test_train_writes_a_loadable_model_with_the_asked_architecture(cli_model):
    assert from_keras(load_model(cli_model)).sizes == (784, 64, 32, 10)


def test_sweep_prints_a_table_and_writes_csv_matching_obd(cli_model, tmp_path, mnist):
    out = tmp_path / "sweep.csv"
    r = run_cli(
        "sweep", "--model", cli_model, "--modes", "weight", "unit", "--sparsities", "0", "50", "90", "--csv", out
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].split() == ["mode", "sparsity", "accuracy", "loss", "kept", "weights"]
    rows = list(csv.DictReader(out.open()))
    assert [(row["mode"], float(row["sparsity"])) for row in rows] == [
        (m, k) for m in ("weight", "unit") for k in (0.0, 0.5, 0.9)
    ]
    net = from_keras(load_model(cli_model))
    for row in rows:
        ev = evaluate(prune(net, float(row["sparsity"]), row["mode"]).net, mnist.x_test, mnist.y_test)
        assert float(row["accuracy"]) == pytest.approx(ev.accuracy, abs=1e-9)
        assert float(row["loss"]) == pytest.approx(ev.loss, rel=1e-5)


def test_sweep_methods_and_gradual_fine_tuning(cli_model, tmp_path):
    out = tmp_path / "gradual.csv"
    r = run_cli(
        "sweep",
        "--model",
        cli_model,
        "--modes",
        "weight",
        "unit",
        "--sparsities",
        "90",
        "--methods",
        "magnitude",
        "obd",
        "--finetune-epochs",
        "0.05",
        "--gradual-steps",
        "2",
        "--csv",
        out,
    )
    assert r.returncode == 0, r.stderr
    assert "in 2 pruning steps" in r.stderr, "progress names the gradual steps"
    assert "fine-tuning at 90 %: step 2/2, 100 %" in r.stderr, "and shows the fine-tuning's own progress"
    rows = list(csv.DictReader(out.open()))
    assert [(row["method"], row["mode"], float(row["finetune_epochs"]), int(row["gradual_steps"])) for row in rows] == [
        (m, md, e, s) for m in ("magnitude", "obd") for md in ("weight", "unit") for e, s in ((0, 1), (0.05, 2))
    ]
    assert len(r.stdout.splitlines()) == 1 + len(rows) and "steps" in r.stdout.splitlines()[0]
    r = run_cli("sweep", "--model", cli_model, "--sparsities", "50", "--methods", "sparsegpt", "--calib", "256")
    assert r.returncode == 0, r.stderr
    assert [line.split()[0] for line in r.stdout.splitlines()[1:]] == ["weight"], "unit is skipped for sparsegpt"


@pytest.mark.parametrize(
    "args, message",
    [
        (["sweep", "--sparsities", "150"], "out of range; give sparsities in percent, 0-100"),
        (["sweep", "--sparsities", "nan"], "out of range"),
        (["sweep", "--sparsities", "abc"], "is not a number"),
        (["sweep", "--modes", "filter"], "invalid choice: 'filter'"),
        (["train", "--hidden", "1000,x"], "give hidden sizes as whole numbers"),
        (["train", "--hidden", "0"], "between 1 and"),
        (["train", "--epochs", "-1"], "expected a number greater than 0"),
        (["train", "--preset", "huge"], "invalid choice: 'huge'"),
        (["fly"], "invalid choice: 'fly'"),
        (["sweep", "--gradual-steps", "0", "--finetune-epochs", "1"], "expected a whole number of at least 1"),
        (["sweep", "--gradual-steps", "3"], "give fine-tuning epochs too (finetune_epochs, --finetune-epochs)"),
        (["sweep", "--methods", "obs", "--finetune-epochs", "1", "--gradual-steps", "2"], "for obs prune one-shot"),
        (["sweep", "--methods", "sparsegpt", "--modes", "unit"], "none of the methods sparsegpt prunes in mode unit"),
        (["sweep", "--scheduler", "10.0.0.5:8786"], "a Dask scheduler address looks like tcp://10.0.0.5:8786"),
        (["warm", "--methods", "annealing"], "invalid choice: 'annealing'"),
        (["warm", "--batch", "20000"], "batch sizes go up to 10000"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args, message, tmp_path):
    r = run_cli(*args, cache=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("obd: error:") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written to the cache"


def test_warm_caches_curves_and_speed_tables_once(cli_model, tmp_path, monkeypatch):
    """`warm` writes the files the dashboard reads (obd.work.sweep.curve_path, obd.work.warm.speed_path); a second run
    finds them all and computes nothing."""
    from obd.core.pruning import BUDGETS
    from obd.work.sweep import load_curve
    from obd.work.warm import load_speed

    r = run_cli("warm", "--model", cli_model, "--methods", "magnitude", "--batch", "1", cache=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "[1/" in r.stderr and "10/10 points" in r.stderr, "progress per point"
    monkeypatch.setenv("OBD_CACHE_DIR", str(tmp_path))  # read where the CLI wrote
    net = from_keras(load_model(cli_model))
    for budget in BUDGETS:
        for mode in ("weight", "unit"):
            records = load_curve(net, "magnitude", mode, budget)
            assert [r.sparsity for r in records] == list(DEFAULT_SPARSITIES) and records[0].budget == budget
    assert {(t["engine"], t["batch"]) for t in load_speed(net, 1)} == {("dense", 1), ("sparse", 1), ("shrunk", 1)}
    computed = [line for line in r.stdout.splitlines() if line.endswith("computed")]
    assert len(computed) == 2 * len(BUDGETS) + 1 and r.stdout.splitlines()[-1].startswith("curves ")
    again = run_cli("warm", "--model", cli_model, "--methods", "magnitude", "--batch", "1", cache=tmp_path)
    assert again.returncode == 0, again.stderr
    assert [line.split()[-1] for line in again.stdout.splitlines()[1:-1]] == ["cached"] * len(computed)


def test_a_bad_model_file_exits_1_with_one_plain_line(tmp_path):
    """A missing file and a hostile one (a real .keras whose config asks for Dense(7,000,000)): exit 1, not a usage
    error, with nothing written."""
    template = save_model(build_model(ModelSpec((8,), True), seed=0), tmp_path / "template.keras")
    hostile = hostile_files(tmp_path, template, bomb=False)["dense_7m"]
    for path, message in ((tmp_path / "missing.keras", "no such model file"), (hostile.path, hostile.refusal)):
        r = run_cli("sweep", "--model", path, cache=tmp_path / "cache")
        assert r.returncode == 1, r.stderr
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("obd: error: ") and message in lines[0], r.stderr
        assert "Traceback" not in r.stderr and "bug" not in r.stderr
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("debug", [False, True])
def test_an_internal_error_exits_1_and_says_it_is_a_bug(debug, tmp_path, monkeypatch, capfd):
    """A command that fails unexpectedly (here `train` handed a function that raises a TypeError, as a bug
    would): one line naming it a bug and how to see the traceback, which OBD_DEBUG=1 prints."""

    def broken(args):
        raise TypeError("unsupported operand type(s) for +: 'int' and 'str'")

    monkeypatch.setattr(cli, "_cmd_train", broken)
    monkeypatch.setenv("OBD_DEBUG", "1" if debug else "0")
    code = cli.main(["train", "--hidden", "4", "--out", str(tmp_path / "m.keras")])
    err = capfd.readouterr().err
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("obd: internal error (a bug in obd, please report it): TypeError: unsupported operand")
    assert ("Traceback" in err) == debug and ("set OBD_DEBUG=1 to see the traceback" in last) != debug
    if not debug:
        assert len(err.strip().splitlines()) == 1
