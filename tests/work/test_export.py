"""Downloads: the pruned and the shrunk model load in a Python that has never imported obd (plain Keras) and
reproduce obd's accuracy within 0.1 point; the curves CSV has the CLI's columns."""

import csv
import io
import json
import subprocess
import sys
import textwrap

import pytest

import obd  # noqa: F401  first: it sets the thread runtimes' environment
from obd.methods.registry import plan
from obd.runtime.evaluate import evaluate
from obd.work import export
from obd.work.sweep import CSV_COLUMNS, sweep

# Run in a fresh interpreter: load each model with Keras alone and print its test accuracy and weight shapes.
PLAIN_KERAS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    with np.load(sys.argv[1]) as f:
        x = f["x_test"].reshape(-1, 784).astype("float32") / 255
        y = f["y_test"]
    out = {}
    for path in sys.argv[2:]:
        model = keras.saving.load_model(path, compile=False)
        pred = model.predict(x, batch_size=2000, verbose=0).argmax(axis=1)
        out[path] = {"accuracy": float((pred == y).mean()), "shapes": [list(w.shape) for w in model.get_weights()]}
    assert not any(name == "obd" or name.startswith("obd.") for name in sys.modules), "obd was imported"
    print(json.dumps(out))
""")


@pytest.mark.parametrize("mode, method", [("unit", "magnitude"), ("weight", "obd")])
def test_downloaded_models_load_in_plain_keras_and_reproduce_the_accuracy(small_net, mnist, tmp_path, mode, method):
    pruned = plan(small_net, method, mode).prune(0.75)
    shown = evaluate(pruned.net, mnist.x_test, mnist.y_test).accuracy
    paths = []
    for kind, data in (("masked", export.masked_model(pruned)), ("shrunk", export.shrunk_model(pruned))):
        path = tmp_path / export.filename(kind, mode, method, 0.75)
        path.write_bytes(data)
        paths.append(str(path))
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_KERAS, mnist.source, *paths],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )  # cwd: the repository's obd/ is not importable from there
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    masked, shrunk = result[paths[0]], result[paths[1]]
    assert abs(masked["accuracy"] - shown) <= 0.001 and abs(shrunk["accuracy"] - shown) <= 0.001
    assert masked["shapes"] == [list(w.shape) for l in small_net.layers for w in (l.kernel, l.bias)]
    if mode == "unit":  # 75 % of each hidden layer's units physically gone
        assert shrunk["shapes"] == [[784, 32], [32], [32, 16], [16], [16, 10], [10]]
    assert paths[1].endswith("obd-" + mode + "-" + method + "-75pct-shrunk.keras")


def test_curves_download_has_the_clis_columns(small_net, mnist):
    records = sweep(small_net, [0.0, 0.5], ["weight"], x=mnist.x_test[:500], y=mnist.y_test[:500])
    rows = list(csv.DictReader(io.StringIO(export.curves_csv(records).decode())))
    assert tuple(rows[0])[: len(CSV_COLUMNS)] == CSV_COLUMNS
    assert [float(r["accuracy"]) for r in rows] == [r.accuracy for r in records]
    assert export.filename("curves", "weight", "magnitude", 0.5) == "obd-curves.csv"
    with pytest.raises(ValueError, match="masked, shrunk, tflite or curves"):
        export.filename("zip", "weight", "magnitude", 0.5)
