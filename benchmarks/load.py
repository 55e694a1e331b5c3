"""Concurrent users on one dashboard server: N chromium sessions move sparsity and mode at once; is every session
fast, error-free, shown its own numbers, and does the server's memory stay put?

A real `streamlit run app.py` (benchmarks/live_app.py) is driven by Playwright: one chromium, one browser context
(its own cookies, websocket and Streamlit session) per user. Each session opens its own address, then makes a
seeded random sequence of moves through the widgets, as a user does: press an arrow key on the sparsity slider
(a neighbouring state, often new), click a quick pick (25 … 99 %: states every session revisits) or click the
other mode. After each move it waits until the page's script state is notRunning, the caption names the
session's new state and the metrics are drawn, then (up to GRACE_S more) for them to show obd's numbers.

Reported:
- rerun latency: from the input event (timestamped in the page) to the first frame that shows the new state's
  numbers after the run, p50/p95, also split by whether some session had opened the state before (the
  server's caches hold it);
- errors: exception boxes and st.error boxes after a move, moves that never finished (timeouts), and tracebacks
  in the server's log; target 0;
- cross-talk: the accuracy, loss, weights and units kept shown must equal what obd computes for the session's
  own (mode, sparsity), and the address must hold that state; target 0 mismatches;
- the server's resident memory (VmRSS) after a warm-up (every session open and a few moves made, so first-load
  allocation is not counted) and after the measured moves: target growth < 50 MB over 500 reruns.

Measured (2-core machine shared with other work; the 8 chromium pages run on it too, and they, not the server,
take most of the CPU): tiny preset, 8 sessions x 50 moves (400 reruns after 5 warm-up moves each): p50 3.05 s,
p95 5.44 s (one session alone: 0.40 / 0.97 s); 0 errors; 0 cross-talk mismatches; server RSS 1127 MB after the
warm-up, 1156 MB after the moves (+29 MB, flat over the last minute); server CPU 178 ms per rerun, chromium's
230 s against the server's 71 s. Challenge preset, 8 x 10: p50 3.2 s, p95 16.2 s, 0 errors, 0 cross-talk; its
RSS swings between 1.5 and 1.85 GB with each rerun's 40 MB activation arrays. Again with 8 x 63 = 504 reruns
(tiny): p50 3.07 s, p95 4.86 s, 0 errors, 0 cross-talk, RSS 1126 -> 1148 MB (+22 MB); and after the budget
control and the all-methods curves (11 traces per chart): p50 2.74 s, p95 3.98 s, 0 errors, 0 cross-talk,
RSS 1127 -> 1145 MB (+17.5 MB), 166 ms of server CPU per rerun.

Usage: OBD_MNIST_PATH=/path/mnist.npz python -m benchmarks.load [--preset tiny|challenge] [--sessions 8]
           [--moves 50] [--warmup 5] [--seed 0] [--json benchmarks/out/load.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import obd  # noqa: F401  first: it sets the thread runtimes' environment, which OpenBLAS reads as numpy loads
import numpy as np

from benchmarks.live_app import (CHROMIUM, CHROMIUM_ARGS, METRICS, Expected, app_constant, cpu_s, descendants_cpu_s,
                                 rss_mb, serve, state_caption)
from obd.pruning import MODES

OUT = Path(__file__).resolve().parent / "out" / "load.json"
QUICK_PICKS = app_constant("QUICK_PICKS")
KINDS, KIND_P = ("nudge", "pick", "mode"), (0.45, 0.3, 0.25)  # slider steps most, as a user exploring does
TARGETS = {"errors": 0, "cross_talk": 0, "rss_growth_mb": 50.0}
GRACE_S = 10.0  # how long finished metrics may take to show the new state's numbers before they count as wrong
SLIDER = "[data-testid='stSlider'] input[type='range']"
SIDEBAR = "[data-testid='stSidebar']"
# The page stamps every input event, so a move's latency is measured in the page's own clock from the moment
# the user acted, without Playwright's action overhead (scrolling, actionability checks) in it.
MARK_INPUT_JS = """for (const t of ["keydown", "pointerdown"])
  addEventListener(t, () => { window.__obdInput = performance.now(); }, true);"""
# What the page shows: the script state, the "Model: …" caption, the metrics {label: value}, and how many
# exception and st.error boxes.
SHOWN_JS = """() => {
  const app = document.querySelector("[data-testid='stApp']"), metrics = {};
  const errors = document.querySelectorAll("[data-testid='stException'], [data-testid='stAlertContentError']");
  for (const m of document.querySelectorAll("[data-testid='stMetric']")) {
    const label = m.querySelector("[data-testid='stMetricLabel']");
    const value = m.querySelector("[data-testid='stMetricValue']");
    if (label && value) metrics[label.innerText.trim()] = value.innerText.trim();
  }
  const cap = [...document.querySelectorAll("[data-testid='stCaptionContainer']")]
    .find(c => c.innerText.startsWith("Model:"));
  return {state: app ? app.getAttribute("data-test-script-state") : null, caption: cap ? cap.innerText : null,
          metrics, errors: errors.length};
}"""
# Done = the run is over, its caption names the expected state and the metrics are drawn; with `exact`, they
# also show the wanted values. Returns ms since the last input event. The metrics can be drawn seconds after the
# script state says notRunning when the machine is busy (React renders the element tree after the status), and
# until then the previous state's numbers may still be on screen: only numbers that stay wrong are cross-talk.
DONE_JS = f"""({{suffix, want, exact}}) => {{
  const shown = ({SHOWN_JS})();
  if (shown.state !== "notRunning" || !shown.caption || !shown.caption.endsWith(suffix)) return false;
  const ok = Object.entries(want).every(([l, v]) => exact ? shown.metrics[l] === v : shown.metrics[l] !== undefined);
  return ok ? {{ms: performance.now() - (window.__obdInput ?? 0)}} : false;
}}"""


@dataclass(frozen=True)
class Move:
    """One user input and the state it leads to."""

    kind: str  # "nudge" (arrow key on the slider), "pick" (a quick-pick pill) or "mode" (the other mode's button)
    arg: str  # the key pressed or the button's label
    mode: str  # the session's mode after the move
    sparsity: int  # the session's sparsity (percent) after the move


def script(rng: np.random.Generator, start: tuple[str, int], moves: int) -> tuple[tuple[str, int], list[Move]]:
    """A user's session: a start state (opened by address) and `moves` inputs, each of which changes the state.

    Args:
        rng: the session's seeded generator.
        start: the (mode, sparsity) the session opens.
        moves: how many inputs.

    Returns:
        (start, the moves in order).
    """
    mode, k = start
    picked, out = None, []  # picked: the pill shown selected (clicking it again would clear it)
    for _ in range(moves):
        kind = str(rng.choice(KINDS, p=KIND_P))
        if kind == "nudge":
            step = 1 if k == 0 else -1 if k == 99 else int(rng.choice((-1, 1)))
            k += step
            arg = "ArrowRight" if step > 0 else "ArrowLeft"
        elif kind == "pick":
            picked = k = int(rng.choice([p for p in QUICK_PICKS if p not in (k, picked)]))
            arg = str(k)
        else:
            mode = arg = MODES[1 - MODES.index(mode)]
        out.append(Move(kind, arg, mode, k))
    return start, out


def scripts(sessions: int, moves: int, seed: int = 0) -> list[tuple[tuple[str, int], list[Move]]]:
    """Every session's script. The sessions open spread over the slider's range in alternating modes, the last
    at weight pruning 99 %, so that the first runs load everything a state can need (the sparse engine's numba
    kernels are ~55 MB, loaded on first use) before memory is first measured.

    Args:
        sessions: how many sessions.
        moves: inputs per session (warm-up and measured).
        seed: seeds every session's generator.

    Returns:
        one (start, moves) per session.
    """
    rngs = np.random.default_rng(seed).spawn(sessions)
    starts = [(MODES[(sessions - 1 - s) % 2], round(99 * (s + 1) / sessions)) for s in range(sessions)]
    return [script(rng, start, moves) for rng, start in zip(rngs, starts)]


async def _settle(page, mode: str, k: int, expected: Expected, timeout_s: float) -> dict:
    """Wait for the run that shows (mode, k) to finish and its metrics to be drawn, then up to GRACE_S more for
    them to read obd's numbers; what the page shows then, and how long it took (None if it never finished)."""
    arg = {"suffix": state_caption(mode, k), "want": expected(mode, k), "exact": False}
    try:
        await page.wait_for_function(DONE_JS, arg=arg, polling=20, timeout=timeout_s * 1000)
    except Exception as e:  # noqa: BLE001 -- a timeout or a crashed page both count as a move that never finished
        return {"latency_s": None, "failure": f"{type(e).__name__}: {str(e).splitlines()[0]}", **await _read(page)}
    try:
        done = await page.wait_for_function(DONE_JS, arg={**arg, "exact": True}, polling=20, timeout=GRACE_S * 1000)
        latency = (await done.json_value())["ms"] / 1000
    except Exception:  # noqa: BLE001 -- finished, but showing other numbers: _check says which
        latency = None
    return {"latency_s": latency, "failure": None, **await _read(page)}


async def _read(page) -> dict:
    shown = await page.evaluate(SHOWN_JS)
    q = parse_qs(urlsplit(page.url).query)
    shown["address"] = (q.get("mode", [None])[0], q.get("sparsity", [None])[0])
    return shown


def _check(shown: dict, mode: str, k: int, expected: Expected) -> list[str]:
    """How what a session shows differs from its own state's numbers (empty: no cross-talk)."""
    want = expected(mode, k)
    wrong = [f"{label}: shows {shown['metrics'].get(label)!r}, obd says {want[label]!r}" for label in METRICS
             if shown["metrics"].get(label) != want[label]]
    if shown["address"] != (mode, str(k)):
        wrong.append(f"address holds {shown['address']}, the session is at {(mode, str(k))}")
    return wrong


async def _open(browser, url: str, preset: str, session: int, start: tuple[str, int], expected: Expected,
                timeout_s: float):
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.add_init_script(MARK_INPUT_JS)
    page = await context.new_page()
    mode, k = start
    await page.goto(f"{url}/?mode={mode}&sparsity={k}&preset={preset}", timeout=timeout_s * 1000)
    shown = await _settle(page, mode, k, expected, timeout_s)
    return page, {"session": session, "move": -1, "kind": "open", "mode": mode, "sparsity": k,
                  **_outcome(shown, mode, k, expected)}


def _outcome(shown: dict, mode: str, k: int, expected: Expected) -> dict:
    return {"latency_s": shown["latency_s"], "failure": shown["failure"], "error_boxes": shown["errors"],
            "mismatches": [] if shown["failure"] else _check(shown, mode, k, expected)}


async def _play(page, session: int, moves: list[Move], first: int, expected: Expected, timeout_s: float,
                clock0: float) -> list[dict]:
    """Make the moves; stops after a move that never finishes (the session's state is unknown from then on)."""
    records = []
    for i, move in enumerate(moves, start=first):
        started = time.perf_counter() - clock0
        try:
            if move.kind == "nudge":
                await page.locator(SLIDER).focus()  # a click elsewhere (pill, mode) took the keyboard focus
                await page.keyboard.press(move.arg)
            else:  # Streamlit draws pills and segmented controls as radio buttons
                button = page.locator(SIDEBAR).get_by_role("radio", name=move.arg, exact=True)
                await button.click(timeout=timeout_s * 1000)
        except Exception as e:  # noqa: BLE001 -- an input the page would not take is a failed move
            shown = {"latency_s": None, "failure": f"input: {type(e).__name__}: {str(e).splitlines()[0]}",
                     **await _read(page)}
        else:
            shown = await _settle(page, move.mode, move.sparsity, expected, timeout_s)
        records.append({"session": session, "move": i, "kind": move.kind, "mode": move.mode,
                        "sparsity": move.sparsity, "started_s": started, **_outcome(shown, move.mode, move.sparsity,
                                                                                     expected)})
        if shown["failure"]:
            break
    return records


async def _sample_rss(pid: int, clock0: float, series: list[tuple[float, float]]) -> None:
    while True:
        series.append((time.perf_counter() - clock0, rss_mb(pid)))
        await asyncio.sleep(1.0)


async def drive(url: str, preset: str, scripts: list[tuple[tuple[str, int], list[Move]]], expected: Expected,
                warmup: int = 0, timeout_s: float = 120.0, pid: int | None = None) -> dict:
    """Run every session's script at once against the server at `url`.

    Each session opens its start state, makes its first `warmup` moves, and waits for the others; then (with the
    server's memory sampled) all make the rest of their moves concurrently.

    Args:
        url: the dashboard's address.
        preset: the preset the sessions open (it must be the one `expected` was computed for).
        scripts: one (start, moves) per session, from `script`.
        expected: obd's numbers for the preset's network.
        warmup: moves per session made before the measured part (not in the records' measured set).
        timeout_s: how long one move may take before it counts as never finished.
        pid: the server's process id, to sample its VmRSS; None skips memory.

    Returns:
        {"warmup": records, "measured": records, "server": {...} or None}; a record per open or move with
        latency_s (None if it never finished), failure, error_boxes and mismatches; the server's VmRSS in MB at
        start, before and after the measured moves, at its peak, once a second (series) and after the sessions
        closed, and its CPU seconds over the measured moves, with those of the browser (chromium and
        Playwright's driver: the rest of this process's children) beside them.
    """
    from playwright.async_api import async_playwright

    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        stats = {"server_started": rss_mb(pid)} if pid else None
        opened = await asyncio.gather(*(_open(browser, url, preset, s, start, expected, timeout_s)
                                        for s, (start, _) in enumerate(scripts)))
        clock0 = time.perf_counter()
        warm = await asyncio.gather(*(_play(page, s, moves[:warmup], 0, expected, timeout_s, clock0)
                                      for s, ((page, _), (_, moves)) in enumerate(zip(opened, scripts))))
        series: list[tuple[float, float]] = []
        clock0 = time.perf_counter()
        if pid:
            stats.update(before=rss_mb(pid), cpu_start=cpu_s(pid), client_start=descendants_cpu_s(os.getpid(), pid))
            sampler = asyncio.create_task(_sample_rss(pid, clock0, series))
        measured = await asyncio.gather(*(_play(page, s, moves[warmup:], warmup, expected, timeout_s, clock0)
                                          for s, ((page, _), (_, moves)) in enumerate(zip(opened, scripts))))
        if pid:
            sampler.cancel()
            stats.update(after=rss_mb(pid), cpu_s=cpu_s(pid) - stats.pop("cpu_start"),
                         client_cpu_s=descendants_cpu_s(os.getpid(), pid) - stats.pop("client_start"),
                         wall_s=time.perf_counter() - clock0)
            stats.update(peak=max([stats["after"]] + [m for _, m in series]), series=series)
        await browser.close()
    if pid:
        await asyncio.sleep(5)  # let the server notice the closed websockets and drop the sessions
        stats["after_close"] = rss_mb(pid)
    return {"warmup": [r for _, r in opened] + [r for rs in warm for r in rs],
            "measured": [r for rs in measured for r in rs], "server": stats}


def summarize(result: dict, preset: str, sessions: int, moves: int, log: Path | None = None) -> dict:
    """The figures of one `drive` run: latency percentiles, errors, cross-talk and memory.

    Args:
        result: what `drive` returned.
        preset: the preset the sessions opened.
        sessions: sessions driven.
        moves: measured moves each session was to make.
        log: the server's log, to count tracebacks in; None skips that count.

    Returns:
        a JSON-able dict of figures (see the module docstring).
    """
    measured = result["measured"]
    seen: set[tuple[str, int]] = {(r["mode"], r["sparsity"]) for r in result["warmup"]}
    for r in sorted(measured, key=lambda r: r["started_s"]):  # first opened by any session = new to the server
        r["new_state"] = (r["mode"], r["sparsity"]) not in seen
        seen.add((r["mode"], r["sparsity"]))
    everything = result["warmup"] + measured

    def pct(rows: list[dict]) -> dict:
        lat = [r["latency_s"] for r in rows if r["latency_s"] is not None]
        return {"n": len(lat), "p50_s": float(np.percentile(lat, 50)) if lat else None,
                "p95_s": float(np.percentile(lat, 95)) if lat else None, "max_s": max(lat, default=None)}

    errors = {"error_boxes": sum(r["error_boxes"] > 0 for r in everything),
              "unfinished": sum(r["failure"] is not None for r in everything),
              "moves_not_made": sessions * moves - len(measured),
              "server_tracebacks": log.read_text(errors="replace").count("Traceback") if log else None}
    stats = result["server"]
    if stats:
        stats["growth"] = stats["after"] - stats["before"]
    return {"preset": preset, "sessions": sessions, "moves_per_session": moves, "reruns": len(measured),
            "cpu_count": os.cpu_count(), "latency": pct(measured),
            "latency_new_state": pct([r for r in measured if r["new_state"]]),
            "latency_seen_state": pct([r for r in measured if not r["new_state"]]),
            "moves_by_kind": {k: sum(r["kind"] == k for r in measured) for k in KINDS},
            "errors": errors, "errors_total": sum(v or 0 for v in errors.values()),
            "cross_talk": sum(bool(r["mismatches"]) for r in everything),
            "mismatch_examples": [f"session {r['session']} move {r['move']}: {m}" for r in everything
                                  for m in r["mismatches"]][:10],
            "failure_examples": [f"session {r['session']} move {r['move']}: {r['failure']}" for r in everything
                                 if r["failure"]][:10],
            "server": stats, "targets": TARGETS, "records": everything}


def table(s: dict) -> str:
    """The figures as a plain-text table with the targets."""
    def ms(p: dict) -> str:
        return "n/a" if p["p50_s"] is None else f"{1000 * p['p50_s']:.0f} / {1000 * p['p95_s']:.0f} ms (n={p['n']})"

    stats = s["server"]
    rows = [("sessions x moves (preset)", f"{s['sessions']} x {s['moves_per_session']} = {s['reruns']} reruns "
                                          f"({s['preset']}, {s['cpu_count']} cores)"),
            ("moves: nudge / pick / mode", " / ".join(str(v) for v in s["moves_by_kind"].values())),
            ("rerun latency p50 / p95", ms(s["latency"])),
            ("  state new to the server", ms(s["latency_new_state"])),
            ("  state seen before", ms(s["latency_seen_state"])),
            ("errors (target 0)", f"{s['errors_total']}  " + ", ".join(f"{k} {v}" for k, v in s["errors"].items())),
            ("cross-talk mismatches (target 0)", str(s["cross_talk"]))]
    if stats:
        rows += [("server RSS at start / after warm-up", f"{stats['server_started']:.0f} / {stats['before']:.0f} MB"),
                 ("server RSS after moves / peak / sessions closed",
                  f"{stats['after']:.0f} / {stats['peak']:.0f} / {stats['after_close']:.0f} MB"),
                 ("RSS growth over the moves (target < 50)", f"{stats['growth']:+.1f} MB"),
                 ("server CPU over the moves", f"{stats['cpu_s']:.0f} s in {stats['wall_s']:.0f} s "
                                               f"({1000 * stats['cpu_s'] / max(s['reruns'], 1):.0f} ms per rerun)"),
                 ("browser CPU over the moves (same machine)", f"{stats['client_cpu_s']:.0f} s")]
    return "\n".join(f"{label:48}{value}" for label, value in rows)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the load against a fresh server, print the table and write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="tiny", help="the model the sessions open (default: tiny; challenge is "
                                                      "the default net, slower per rerun)")
    ap.add_argument("--sessions", type=int, default=8)
    ap.add_argument("--moves", type=int, default=50, help="measured moves per session")
    ap.add_argument("--warmup", type=int, default=5, help="moves per session before memory is first measured")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds one move may take")
    ap.add_argument("--json", type=Path, default=OUT)
    args = ap.parse_args(argv)

    from obd.config import TrainConfig, preset_spec
    from obd.data import load_mnist
    from obd.model import trained_model
    from obd.network import from_keras

    d = load_mnist()
    net = from_keras(trained_model(preset_spec(args.preset), TrainConfig(), d)[0])  # trains into the cache if needed
    plans = scripts(args.sessions, args.warmup + args.moves, args.seed)
    expected = Expected(net, d.x_test, d.y_test)
    for start, moves in plans:  # before the server starts, so the oracle takes no CPU from it
        for mode, k in [start] + [(m.mode, m.sparsity) for m in moves]:
            expected(mode, k)
    log = Path(tempfile.mkdtemp(prefix="obd-load-")) / "streamlit.log"
    with serve(args.preset, log) as server:
        result = asyncio.run(drive(server.url, args.preset, plans, expected, args.warmup, args.timeout, server.pid))
    figures = summarize(result, args.preset, args.sessions, args.moves, log)
    print(table(figures))
    print(f"server log: {log}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
