"""A class on one server: N concurrent sessions move sparsity and mode for T seconds; is every session fast,
error-free, shown its own numbers, and does the server's memory stay put? And what does one rerun of a state seen
before cost the server?

The sessions are protocol-level clients (benchmarks/streamlit_client.py), not browsers: each opens the
websocket a browser opens, sends the widget values a browser sends and reruns fragments on the server's timers,
but draws nothing, so 30 of them fit beside the server on 2 cores (30 chromium pages would starve it). Each
session opens its own address, then walks a seeded random sequence of moves with a think time between them:
a quick pick (25 … 99 %: states every session revisits), a random slider value, a small slider step, or the other
mode. A move is done when the page shows the new state's caption and metrics (the page may first say the point is
being computed, then rerun itself when its background job is done).

Reported:
- per move, client side: request to the first finished run, and request to the page showing the new state's
  numbers (p50/p95, also split by whether some session had opened the state before);
- server side: its CPU seconds (/proc/PID/stat, every thread) over the measured phase per full run and per move,
  and each run's execution time as the server measured it (the page profile Streamlit sends with
  browser.gatherUsageStats on; with --url, new_session to script_finished as the client saw them instead);
- errors: exception boxes and st.error alerts on a settled page, moves that never settled, and tracebacks in the
  server's log;
- cross-talk: the caption, the slider, the address and the metrics must be those of the session's own (mode,
  sparsity): the metrics are checked against obd's own numbers after the run, so the check takes no CPU from the
  server while it is measured;
- the server's resident memory after the warm-up and at the end of the measured phase.
`--cpu-per-rerun`: one session visits the quick picks in both modes, then revisits them; the server's CPU per
rerun of a state seen before (target <= 50 ms on the default model).

What one session does, and every label it looks for (`LABELS`), is in benchmarks/load_user.py: a reworded or
rearranged page needs one change there.

Usage: OBD_MNIST_PATH=/path/mnist.npz python -m benchmarks.load [--preset challenge|tiny|…] [--sessions 30]
           [--duration 300] [--think 1 3] [--warmup 3] [--stagger 1] [--seed 0] [--url http://host:port [--pid PID]]
           [--cpu-per-rerun [--rounds 5]] [--json PATH]
Writes the figures to benchmarks/results/load.json (load-cpu-per-rerun.json with --cpu-per-rerun).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
from benchmarks import results
from benchmarks.live_app import Expected, cpu_s, rss_mb, serve
from benchmarks.load_user import LABELS, MOVES, AppLabels, LoadConfig, move, shows, user
from benchmarks.streamlit_client import Page, ProtocolError, Session
from obd.core.config import DEFAULT_PRESET
from obd.core.pruning import MODES

TARGETS = {"errors": 0, "cross_talk": 0, "server_p95_s": 1.0, "rss_growth_mb": 100.0, "seen_cpu_ms": 50.0}
USAGE_STATS = ("--browser.gatherUsageStats", "true")  # makes the server send each run's page profile (its
# execution time); only a browser would send anything on from there, and these sessions are not browsers


async def _sample(pid: int, series: list[tuple[float, float]]) -> None:
    while True:
        series.append((time.perf_counter(), rss_mb(pid)))
        await asyncio.sleep(1.0)


async def drive(
    url: str, cfg: LoadConfig, pid: int | None = None, log: Path | None = None, labels: AppLabels = LABELS
) -> dict:
    """Run every session at once against the server at `url`.

    One page is opened first and closed (the teacher's: a fresh server loads the model and its caches), then
    the sessions arrive `cfg.stagger_s` apart, each opening its start state (spread over the slider in
    alternating modes), and make `cfg.warmup` moves; when all have, memory and CPU are read and every session
    keeps moving for `cfg.duration_s`.

    Args:
        url: the dashboard's address.
        cfg: sessions, duration, think time, warm-up, seed, timeout.
        pid: the server's process id, for its CPU and memory; None skips both.
        log: the server's log, to count the tracebacks written until the sessions close; None skips that.
        labels: the page's labels.

    Returns:
        {"records": one per open and move, "runs": every run the sessions saw during the measured phase as
        (fragment?, server seconds), "server": CPU and memory figures or None, "wall_s": the measured phase's
        length, "tracebacks": the count in the log (None without it)}; the sessions closing make the server log
        websocket tracebacks of its own, which are not counted.
    """
    first, _ = await Session.open(url, "", cfg.first_open_s)
    await first.until(lambda page: shows(page, None, None, labels) or bool(page.errors()), cfg.first_open_s)
    await first.close()
    warm = asyncio.Barrier(cfg.sessions + 1)
    phase = {"end": float("inf")}
    starts = [(MODES[i % 2], round(99 * (i + 1) / cfg.sessions)) for i in range(cfg.sessions)]
    users = [asyncio.create_task(user(i, url, s, cfg, warm, phase, labels)) for i, s in enumerate(starts)]
    await warm.wait()
    t0 = time.perf_counter()
    phase["end"] = t0 + cfg.duration_s
    server, series, sampler = None, [], None
    if pid:
        server = {"rss_after_warmup_mb": rss_mb(pid), "cpu_start": cpu_s(pid)}
        sampler = asyncio.create_task(_sample(pid, series))
    done = await asyncio.gather(*users)
    t1 = time.perf_counter()
    if pid:
        sampler.cancel()
        server.update(
            rss_end_mb=rss_mb(pid),
            cpu_s=cpu_s(pid) - server.pop("cpu_start"),
            rss_peak_mb=max(m for _, m in series + [(t1, rss_mb(pid))]),
            rss_series=[(round(t - t0, 1), round(m, 1)) for t, m in series],
        )
    runs = [(r.fragment, r.server_s) for s, _ in done if s for r in s.runs if t0 <= r.finished <= t1]
    tracebacks = log.read_text(errors="replace").count("Traceback") if log else None
    for s, _ in done:
        if s:
            await s.close()
    if pid:
        await asyncio.sleep(5)  # the server drops closed sessions
        server["rss_closed_mb"] = rss_mb(pid)
    return {
        "records": [r for _, rs in done for r in rs],
        "runs": runs,
        "server": server,
        "wall_s": t1 - t0,
        "tracebacks": tracebacks,
    }


async def _quiet(pid: int, below: float = 0.05, timeout_s: float = 120.0) -> float:
    """Wait until the server's background work (jobs the first visits started) is done: its CPU use over 2 s
    below `below` cores, or `timeout_s` passed. Returns the last rate, in CPU ms per second."""
    deadline = time.perf_counter() + timeout_s
    while True:
        c0 = cpu_s(pid)
        await asyncio.sleep(2)
        rate = (cpu_s(pid) - c0) / 2
        if rate < below or time.perf_counter() > deadline:
            return 1000 * rate


async def cpu_per_rerun(
    url: str, pid: int, rounds: int = 5, timeout_s: float = 120.0, labels: AppLabels = LABELS
) -> dict:
    """The server's CPU per rerun of a state seen before: one session visits every quick pick in both modes
    (first visits: computed and cached), then revisits them `rounds` times.

    Args:
        url: the dashboard's address.
        pid: the server's process id.
        rounds: revisits of every state.
        timeout_s: how long one move may take to settle.
        labels: the page's labels.

    Returns:
        CPU ms per move and per full run for first visits and for revisits, the server's CPU rate once the
        first visits' background work is done (idle_cpu_ms_per_s, ~0 when nothing else runs there), the
        server's execution time per revisit (median), and the failures or errors seen.
    """
    session, _ = await Session.open(url, f"mode={MODES[0]}&sparsity=0", timeout_s)
    _, pills = session.page.widget(labels.quick_picks, "button_group")
    picks = [int(o.content) for o in pills.options]
    states = [(m, p) for m in MODES for p in picks]

    at = {"mode": MODES[0], "k": 0}  # the session's state

    def measured(page: Page) -> bool:
        value = page.metrics().get(labels.latency)
        return value is not None and value != labels.measuring

    async def visit(first: bool = False) -> dict:
        c0, n_runs, records = cpu_s(pid), len(session.runs), []
        for m, p in states:
            if m != at["mode"]:
                records.append(await move(session, labels.mode, m, m, at["k"], timeout_s, labels))
            if p != at["k"]:
                records.append(await move(session, labels.sparsity, p, m, p, timeout_s, labels))
            if first:  # a state is seen once all of it is computed, its latency reading too (that job is queued
                # behind the others: a revisit would otherwise resume a paused one and count it as a rerun's)
                with contextlib.suppress(ProtocolError):
                    await session.until(measured, timeout_s)
            at.update(mode=m, k=p)
        await asyncio.sleep(3)  # background work a move started (e.g. its latency measurement) is part of its cost
        cpu = cpu_s(pid) - c0
        runs = [r for r in session.runs[n_runs:] if not r.fragment]
        return {
            "moves": len(records),
            "full_runs": len(runs),
            "cpu_s": cpu,
            "server_s": [r.server_s for r in runs],
            "problems": [
                r["failure"] or r["errors"] or r["mismatches"]
                for r in records
                if r["failure"] or r["errors"] or r["mismatches"]
            ],
        }

    first = await visit(first=True)
    idle = await _quiet(pid)
    again = [await visit() for _ in range(rounds)]
    await session.close()
    moves, full = sum(v["moves"] for v in again), sum(v["full_runs"] for v in again)
    cpu = sum(v["cpu_s"] for v in again)
    return {
        "states": len(states),
        "rounds": rounds,
        "idle_cpu_ms_per_s": idle,
        "first_visit_cpu_ms_per_move": 1000 * first["cpu_s"] / first["moves"],
        "seen_cpu_ms_per_move": 1000 * cpu / moves,
        "seen_cpu_ms_per_full_run": 1000 * cpu / full,
        "seen_server_s_p50": float(np.median([s for v in again for s in v["server_s"]])),
        "problems": first["problems"] + [p for v in again for p in v["problems"]],
    }


def _pct(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_s": float(np.percentile(values, 50)) if values else None,
        "p95_s": float(np.percentile(values, 95)) if values else None,
        "max_s": max(values) if values else None,
    }


def summarize(result: dict, cfg: LoadConfig, expected: Expected | None) -> dict:
    """The figures of one `drive` run, with the metrics checked against obd's numbers.

    Args:
        result: what `drive` returned.
        cfg: the run's configuration.
        expected: obd's numbers for the server's network; None skips the metric check.

    Returns:
        a JSON-able dict of figures (see the module docstring).
    """
    records = result["records"]
    for r in records:  # the oracle runs after the load, on the metrics each settled page showed
        if expected and r["metrics"]:
            want = expected(r["mode"], r["sparsity"])
            r["mismatches"] = r["mismatches"] + [
                f"{m}: shows {r['metrics'][m]!r}, obd says {want[m]!r}" for m in want if r["metrics"].get(m) != want[m]
            ]
    measured = sorted((r for r in records if r["phase"] == "measured"), key=lambda r: r["started"])
    seen = {(r["mode"], r["sparsity"]) for r in records if r["phase"] == "warmup"}
    for r in measured:  # first opened by any session = new to the server
        r["new_state"] = (r["mode"], r["sparsity"]) not in seen
        seen.add((r["mode"], r["sparsity"]))
    ok = [r for r in measured if r["settle_s"] is not None]
    full = [s for fragment, s in result["runs"] if not fragment]
    errors = {
        "error_pages": sum(bool(r["errors"]) for r in records),
        "unsettled": sum(r["failure"] is not None for r in records),
        "server_tracebacks": result["tracebacks"],
    }
    server = result["server"]
    if server:
        server.update(
            growth_mb=server["rss_end_mb"] - server["rss_after_warmup_mb"],
            cpu_ms_per_full_run=1000 * server["cpu_s"] / max(len(full), 1),
            cpu_ms_per_move=1000 * server["cpu_s"] / max(len(measured), 1),
            cpu_share=server["cpu_s"] / result["wall_s"],
        )
    return {
        "config": {
            "sessions": cfg.sessions,
            "duration_s": cfg.duration_s,
            "think_s": cfg.think_s,
            "warmup": cfg.warmup,
            "seed": cfg.seed,
        },
        "cpu_count": os.cpu_count(),
        "wall_s": result["wall_s"],
        "moves": len(measured),
        "moves_by_kind": {k: sum(r["kind"] == k for r in measured) for k in MOVES},
        "full_runs": len(full),
        "fragment_runs": len(result["runs"]) - len(full),
        "move_run": _pct([r["run_s"] for r in ok]),
        "move_settle": _pct([r["settle_s"] for r in ok]),
        "settle_new_state": _pct([r["settle_s"] for r in ok if r["new_state"]]),
        "settle_seen_state": _pct([r["settle_s"] for r in ok if not r["new_state"]]),
        "server_run": _pct(full),
        "server_fragment_run": _pct([s for f, s in result["runs"] if f]),
        "errors": errors,
        "errors_total": sum(v or 0 for v in errors.values()),
        "cross_talk": sum(bool(r["mismatches"]) for r in records),
        "examples": [
            f"session {r['session']} move {r['move']}: {r['failure'] or r['errors'] or r['mismatches']}"
            for r in records
            if r["failure"] or r["errors"] or r["mismatches"]
        ][:10],
        "server": server,
        "targets": TARGETS,
        "records": records,
    }


def table(s: dict) -> str:
    """The figures as plain text, with the targets."""

    def ms(p: dict) -> str:
        return "n/a" if p["p50_s"] is None else f"{1000 * p['p50_s']:.0f} / {1000 * p['p95_s']:.0f} ms (n={p['n']})"

    c, server = s["config"], s["server"]
    rows = [
        (
            "sessions x seconds",
            f"{c['sessions']} x {c['duration_s']:.0f} s, think {c['think_s'][0]:g}-"
            f"{c['think_s'][1]:g} s ({s['cpu_count']} cores)",
        ),
        (
            "moves (pick / slide / nudge / mode)",
            f"{s['moves']} (" + " / ".join(map(str, s["moves_by_kind"].values())) + ")",
        ),
        ("server runs: full / fragment", f"{s['full_runs']} / {s['fragment_runs']}"),
        ("move -> first run finished, p50 / p95", ms(s["move_run"])),
        ("move -> state shown, p50 / p95", ms(s["move_settle"])),
        ("  state new to the server", ms(s["settle_new_state"])),
        ("  state seen before", ms(s["settle_seen_state"])),
        ("server time per full run p50 / p95 (<= 1 s)", ms(s["server_run"])),
        ("server time per fragment run p50 / p95", ms(s["server_fragment_run"])),
        ("errors (target 0)", f"{s['errors_total']}  " + ", ".join(f"{k} {v}" for k, v in s["errors"].items())),
        ("cross-talk (target 0)", str(s["cross_talk"])),
    ]
    if server:
        rows += [
            (
                "server RSS after warm-up / end / peak / closed",
                f"{server['rss_after_warmup_mb']:.0f} / {server['rss_end_mb']:.0f} / {server['rss_peak_mb']:.0f}"
                f" / {server['rss_closed_mb']:.0f} MB",
            ),
            ("RSS growth (target < 100 MB)", f"{server['growth_mb']:+.1f} MB"),
            (
                "server CPU",
                f"{server['cpu_s']:.0f} s in {s['wall_s']:.0f} s ({server['cpu_share']:.2f} cores): "
                f"{server['cpu_ms_per_full_run']:.0f} ms per full run, "
                f"{server['cpu_ms_per_move']:.0f} ms per move",
            ),
        ]
    return "\n".join(f"{label:48}{value}" for label, value in rows)


def _oracle(preset: str) -> Expected:
    """obd's numbers for the preset's network (trained into the cache first if it is not there, so that the
    server opens it rather than training it)."""
    from obd.core.config import preset_spec, preset_train_config
    from obd.core.data import load_mnist
    from obd.core.files import cached_network

    d = load_mnist()
    spec, train = preset_spec(preset), preset_train_config(preset)
    net = cached_network(spec, train)
    if net is None:
        from obd.core.network import from_keras
        from obd.training.model import trained_model

        net = from_keras(trained_model(spec, train, d)[0])
    return Expected(net, d.x_test, d.y_test, LABELS.method)


@contextlib.contextmanager
def _server(url: str | None, pid: int | None, preset: str) -> Iterator[tuple[str, int | None, Path | None]]:
    """The server to drive: the one at `url`, or a fresh `streamlit run app.py` on `preset` that sends its page
    profiles; yields (address, process id or None, log file or None)."""
    if url:
        yield url, pid, None
        return
    log = Path(tempfile.mkdtemp(prefix="obd-load-")) / "streamlit.log"
    with serve(preset, log, options=USAGE_STATS) as server:
        yield server.url, server.pid, log


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the load (or the CPU-per-rerun measurement), print the figures, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--preset",
        default=os.environ.get("OBD_PRESET", DEFAULT_PRESET),
        help=f"the server's OBD_PRESET (default: $OBD_PRESET, else {DEFAULT_PRESET})",
    )
    ap.add_argument("--sessions", type=int, default=LoadConfig.sessions)
    ap.add_argument("--duration", type=float, default=LoadConfig.duration_s, help="seconds of measured load")
    ap.add_argument(
        "--think",
        type=float,
        nargs=2,
        default=LoadConfig.think_s,
        metavar=("LOW", "HIGH"),
        help="seconds a user pauses between moves, drawn uniformly",
    )
    ap.add_argument("--warmup", type=int, default=LoadConfig.warmup, help="moves per session before measuring")
    ap.add_argument("--seed", type=int, default=LoadConfig.seed)
    ap.add_argument("--timeout", type=float, default=LoadConfig.timeout_s, help="seconds one move may take")
    ap.add_argument("--stagger", type=float, default=LoadConfig.stagger_s, help="seconds between arrivals")
    ap.add_argument("--url", help="drive this running server instead of starting one")
    ap.add_argument("--pid", type=int, help="with --url: the server's process id, for its CPU and memory")
    ap.add_argument("--cpu-per-rerun", action="store_true", help="one session: server CPU per rerun of seen states")
    ap.add_argument("--rounds", type=int, default=5, help="with --cpu-per-rerun: revisits of every state")
    ap.add_argument("--no-check", action="store_true", help="skip checking the metrics against obd's numbers")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args(argv)
    try:
        cfg = LoadConfig(
            args.sessions, args.duration, tuple(args.think), args.warmup, args.seed, args.timeout, args.stagger
        )
    except ValueError as e:
        ap.error(str(e))
    expected = None if args.no_check else _oracle(args.preset)  # before the server starts: it trains if needed
    with _server(args.url, args.pid, args.preset) as (url, pid, log):
        if args.cpu_per_rerun:
            if pid is None:
                ap.error(
                    "--cpu-per-rerun needs the server's process id: start no server (leave out --url) or give --pid"
                )
            figures = asyncio.run(cpu_per_rerun(url, pid, args.rounds, args.timeout))
            figures["preset"] = args.preset
            print("\n".join(f"{k:32}{v}" for k, v in figures.items()))
            print(f"target: <= {TARGETS['seen_cpu_ms']:.0f} ms of server CPU per rerun of a seen state")
        else:
            result = asyncio.run(drive(url, cfg, pid, log))
    if not args.cpu_per_rerun:
        figures = summarize(result, cfg, expected)  # after the server stopped: the oracle takes no CPU from it
        figures["preset"] = args.preset
        print(table(figures))
        for line in figures["examples"]:
            print("  " + line)
    if log:
        print(f"server log: {log}")
    results.write("load-cpu-per-rerun" if args.cpu_per_rerun else "load", figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
