"""Hostile model files refused before anything is built: wall time and peak memory, in the CLI and the app.

Each file is a real `.keras` archive (a small MLP saved by obd) with its config or weights rewritten as an
attacker would: a Dense layer of 7,000,000 units (Keras built it before obd looked, filling the machine's memory),
an input of 50 million values, a build shape that lies, a model over the parameter cap, a convolutional layer,
a config nested too deep for any parser, a zip bomb, weights whose HDF5 file links to other files, and one whose
compressed dataset declares 10 GB. Each is
refused in a fresh process, timed from the process's start to its exit, its peak RSS read with getrusage:
- cli: `python -m obd sweep --model FILE` (what a user runs);
- app: the upload check the dashboard runs (`ui.services.models.store_upload`) in a process that imported what
  the server has imported; its peak is reported whole and as the rise over the process before the check;
- live: a few of them uploaded from chromium to a running `streamlit run app.py` (tiny preset, the user's cache):
  the seconds until the message shows, the server's peak memory before and after, and a new page served after.

Run from the repository root: python -m benchmarks.hostile_upload   (writes benchmarks/results/hostile_upload.json)
Targets (issue 27): the Dense(7,000,000) file refused in <= 2 s and <= 300 MB peak, in the CLI and the app.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET_S, TARGET_MB = 2.0, 300.0
NAMES = (  # every file `hostile_files` builds, the first
    "dense_7m",
    "huge_input",
    "lying_build",
    "too_many_parameters",
    "conv",
    "deep_json",
    "external_link",
    "virtual_dataset",
    "h5_bomb",
    "zip_bomb",
)
# The app's side, in a child: import what the server holds, then time the check of one upload.
APP_CHILD = """
import json, resource, sys, time
from pathlib import Path
import obd
from ui.services import models
raw = Path(sys.argv[1]).read_bytes()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
start = time.perf_counter()
try:
    models.store_upload(raw, session="benchmark")
    message = ""
except ValueError as e:
    message = str(e)
print(json.dumps({"check_s": time.perf_counter() - start, "before_mb": before, "message": message}))
"""


@dataclass(frozen=True)
class Hostile:
    """A hostile model file and a fragment of the message that must refuse it."""

    path: Path
    refusal: str


def rewrite(template: Path, out: Path, config: Callable[[dict], object] | None = None, **members: bytes) -> Path:
    """A copy of a real .keras archive with its config.json changed by `config` (which edits it in place, or
    returns bytes to write instead) and the members given by name replaced."""
    with zipfile.ZipFile(template) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            data = members.get(info.filename.replace(".", "_"), src.read(info))
            if info.filename == "config.json" and config is not None:
                parsed = json.loads(data)
                written = config(parsed)
                data = written if isinstance(written, bytes) else json.dumps(parsed).encode()
            dst.writestr(info, data)
    return out


def _layers(config: dict) -> list[dict]:
    return config["config"]["layers"]


def _wide_hidden(config: dict) -> None:
    """Three hidden Dense layers of 8000 units (each under the units cap; together 150 M parameters)."""
    layers = _layers(config)
    dense = layers[1]
    for i in range(3):
        extra = json.loads(json.dumps(dense))
        extra["config"].update(name=f"wide_{i}", units=8000)
        extra.pop("build_config", None)
        layers.insert(2 + i, extra)
    for layer in layers[1:]:
        layer.pop("build_config", None)  # Keras builds along the graph: every width follows the one before


def _conv(config: dict) -> None:
    layer = _layers(config)[1]
    layer["class_name"] = "Conv2D"
    layer["config"].update(filters=32, kernel_size=[3, 3], name="conv")


def _weights_with(template: Path, folder: Path, link: str) -> bytes:
    """The template's weights file with its first kernel replaced by an external link or a virtual dataset
    pointing at another HDF5 file on the server, or by a compressed dataset declaring 10 GB ("bomb")."""
    import h5py
    import numpy as np

    other = folder / "server-secret.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("secret", data=np.arange(8 * 784, dtype=np.float32).reshape(784, 8))
    local = folder / f"weights-{link}.h5"
    with zipfile.ZipFile(template) as z:
        local.write_bytes(z.read("model.weights.h5"))
    with h5py.File(local, "r+") as f:
        group = f["layers"]["dense"]["vars"]
        del group["0"]
        if link == "external":
            group["0"] = h5py.ExternalLink(str(other), "/secret")
        elif link == "bomb":  # 10 GB of float32 declared, none written: a few KB in the file, 10 GB when read
            group.create_dataset("0", shape=(50_000, 50_000), dtype=np.float32, chunks=True, compression="gzip")
        else:
            source = h5py.VirtualSource(str(other), "secret", shape=(784, 8))
            layout = h5py.VirtualLayout(shape=(784, 8), dtype=np.float32)
            layout[:] = source
            group.create_virtual_dataset("0", layout)
    return local.read_bytes()


def hostile_files(folder: Path, template: Path, bomb: bool = True) -> dict[str, Hostile]:
    """Build the hostile files from a real `.keras` MLP.

    Args:
        folder: where to write them.
        template: a `.keras` of a Sequential 784-h-10 MLP with biases, as obd.training.model.save_model writes it.
        bomb: also the zip bomb (300 MB to compress: a second or two).

    Returns:
        name -> Hostile, in the order of NAMES (without the zip bomb when `bomb` is False).
    """
    files = {
        "dense_7m": Hostile(
            rewrite(template, folder / "dense_7m.keras", lambda c: _layers(c)[1]["config"].update(units=7_000_000)),
            "asks for 7000000 units",
        ),
        "huge_input": Hostile(
            rewrite(
                template,
                folder / "huge_input.keras",
                lambda c: _layers(c)[0]["config"].update(batch_shape=[None, 50_000_000]),
            ),
            "batch_shape of 50,000,000 values",
        ),
        "lying_build": Hostile(
            rewrite(
                template,
                folder / "lying_build.keras",
                lambda c: _layers(c)[2]["build_config"].update(input_shape=[None, 7_000_000]),
            ),
            "input_shape of 7,000,000 values",
        ),
        "too_many_parameters": Hostile(rewrite(template, folder / "wide.keras", _wide_hidden), "parameters"),
        "conv": Hostile(rewrite(template, folder / "conv.keras", _conv), "convolutional, recurrent and attention"),
        "deep_json": Hostile(
            rewrite(template, folder / "deep_json.keras", lambda c: b"[" * 200_000 + b"]" * 200_000),
            "the archive is damaged",
        ),
        "external_link": Hostile(
            rewrite(template, folder / "external.keras", model_weights_h5=_weights_with(template, folder, "external")),
            "an external link to another file",
        ),
        "virtual_dataset": Hostile(
            rewrite(template, folder / "virtual.keras", model_weights_h5=_weights_with(template, folder, "virtual")),
            "a virtual dataset",
        ),
    }
    files["h5_bomb"] = Hostile(
        rewrite(template, folder / "h5_bomb.keras", model_weights_h5=_weights_with(template, folder, "bomb")),
        "its weights file's arrays hold over 256.0 MB once read",
    )
    if bomb:
        out = folder / "zip_bomb.keras"
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z, zipfile.ZipFile(template) as src:
            z.writestr("config.json", src.read("config.json"))
            with z.open("model.weights.h5", "w", force_zip64=True) as w:
                chunk = bytes(2**24)
                for _ in range(300 * 2**20 // len(chunk)):
                    w.write(chunk)
        files["zip_bomb"] = Hostile(out, "its contents unpack to 288.0 MB")
    return files


def _measure(command: list[str]) -> dict:
    """Run a command in a fresh child; its wall time, peak RSS, exit code and output."""
    wrapper = (
        "import json, resource, subprocess, sys, time\n"
        "start = time.perf_counter()\n"
        "r = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
        "print(json.dumps({'wall_s': time.perf_counter() - start, 'rc': r.returncode, 'out': r.stdout,\n"
        "    'err': r.stderr, 'peak_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", wrapper, *command], cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    return json.loads(done.stdout)


def refuse_in_cli(hostile: Hostile, cache: Path) -> dict:
    """`python -m obd sweep --model FILE` in a fresh process: wall time, peak RSS, exit code, message."""
    m = _measure(["env", f"OBD_CACHE_DIR={cache}", sys.executable, "-m", "obd", "sweep", "--model", str(hostile.path)])
    line = m["err"].strip().splitlines()[-1] if m["err"].strip() else ""
    return {"wall_s": m["wall_s"], "peak_mb": m["peak_mb"], "exit": m["rc"], "message": line}


def refuse_in_app(hostile: Hostile) -> dict:
    """The dashboard's upload check in a fresh process holding the server's imports."""
    m = _measure([sys.executable, "-c", APP_CHILD, str(hostile.path)])
    child = json.loads(m["out"].strip().splitlines()[-1]) if m["rc"] == 0 else {}
    return {
        "check_s": child.get("check_s"),
        "peak_mb": m["peak_mb"],
        "rise_mb": m["peak_mb"] - child["before_mb"] if child else None,
        "message": child.get("message") or m["err"].strip()[-300:],
    }


LIVE = ("dense_7m", "too_many_parameters", "h5_bomb")  # uploaded to a running server, one after another


def _status_mb(pid: int, field: str) -> float:
    """A memory figure of a process from /proc/PID/status (VmRSS now, VmHWM its peak so far), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for process {pid}")


def refuse_in_live_server(files: dict[str, Hostile], folder: Path) -> list[dict]:
    """Upload hostile files to a real `streamlit run app.py` (tiny preset) from chromium, one after another: the
    seconds from handing the file to the page to its message showing, the server's peak memory before and after,
    and whether the page, and a second page opened afterwards, still show their numbers."""
    from playwright.sync_api import sync_playwright

    from benchmarks.live_app import CHROMIUM, CHROMIUM_ARGS, IDLE, serve

    rows = []
    with serve("tiny", folder / "server.log") as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url, timeout=120_000)
            page.wait_for_selector("[data-testid='stMetric']", timeout=300_000)
            page.wait_for_selector(IDLE, timeout=300_000)
            for name in LIVE:
                peak_before = _status_mb(server.pid, "VmHWM")
                start = time.perf_counter()
                page.locator("[data-testid='stSidebar'] input[type='file']").set_input_files(str(files[name].path))
                alert = page.locator("[data-testid='stSidebar'] [data-testid='stAlert']")
                alert.filter(has_text=files[name].refusal).wait_for(timeout=60_000)
                seconds = time.perf_counter() - start
                page.wait_for_selector(IDLE, timeout=60_000)
                other = browser.new_page()
                other.goto(server.url, timeout=60_000)
                other.wait_for_selector("[data-testid='stMetric']", timeout=120_000)
                other.close()
                rows.append(
                    {
                        "file": name,
                        "to_message_s": round(seconds, 2),
                        "server_peak_before_mb": round(peak_before),
                        "server_peak_after_mb": round(_status_mb(server.pid, "VmHWM")),
                        "page_still_shows_numbers": page.locator("[data-testid='stMetric']").count() > 0,
                        "new_page_served": True,
                    }
                )
                print(f"live {name:<20} {rows[-1]}", flush=True)
        finally:
            browser.close()
    return rows


def main() -> None:
    from benchmarks import results
    from obd.core.config import ModelSpec
    from obd.training.model import build_model, save_model

    with tempfile.TemporaryDirectory(prefix="obd-hostile-") as tmp:
        folder = Path(tmp)
        template = save_model(build_model(ModelSpec((8,), True), seed=0), folder / "template.keras")
        rows, messages = [], {}
        files = hostile_files(folder, template)
        for name, hostile in files.items():
            before = hostile.path.read_bytes()
            cli, app = refuse_in_cli(hostile, folder / "cache"), refuse_in_app(hostile)
            refused = (
                cli["exit"] == 1 and hostile.refusal in cli["message"] and hostile.refusal in app["message"]
            ) and hostile.path.read_bytes() == before
            rows.append(
                {
                    "file": name,
                    "size_kb": round(hostile.path.stat().st_size / 1024, 1),
                    "cli_s": round(cli["wall_s"], 2),
                    "cli_peak_mb": round(cli["peak_mb"]),
                    "app_check_s": round(app["check_s"], 3) if app["check_s"] is not None else None,
                    "app_peak_mb": round(app["peak_mb"]),
                    "app_rise_mb": round(app["rise_mb"]) if app["rise_mb"] is not None else None,
                    "refused_clearly": refused,
                }
            )
            messages[name] = cli["message"]
            print(f"{name:<20} {rows[-1]}", flush=True)
            if not refused:
                print(f"  cli: {cli['message']}\n  app: {app['message']}", flush=True)
        live = refuse_in_live_server(files, folder)
    worst = rows[0]
    figures = {
        "files": rows,
        "live_server": live,
        "messages": messages,
        "headline": [
            {
                "result": "Dense(7,000,000) upload refused (CLI, whole process)",
                "figure": f"{worst['cli_s']} s, {worst['cli_peak_mb']} MB peak",
                "target": f"<= {TARGET_S:g} s, <= {TARGET_MB:g} MB",
            },
            {
                "result": "Dense(7,000,000) upload refused (app's check)",
                "figure": f"{worst['app_check_s']} s, +{worst['app_rise_mb']} MB ({worst['app_peak_mb']} MB process)",
                "target": f"<= {TARGET_S:g} s, <= {TARGET_MB:g} MB",
            },
            {
                "result": "Dense(7,000,000) uploaded to a running server (chromium): message, server peak memory",
                "figure": f"{live[0]['to_message_s']} s, {live[0]['server_peak_before_mb']} -> "
                f"{live[0]['server_peak_after_mb']} MB; the server goes on serving",
                "target": f"<= {TARGET_S:g} s, <= {TARGET_MB:g} MB more",
            },
        ],
    }
    results.write("hostile_upload", figures)


if __name__ == "__main__":
    main()
