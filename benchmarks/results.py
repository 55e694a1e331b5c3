"""Benchmark results on disk: each benchmark writes benchmarks/results/<name>.json, and this module makes
benchmarks/RESULTS.md and the README's headline table from those files, so no figure is copied by hand.

A result file holds {"benchmark", "machine", "date", "command", "load", "figures"} ("load": the machine's 1-minute
load average when the benchmark started and when it wrote, since other work on the machine slows every timing);
"figures" is the benchmark's own
JSON: scalars, lists of flat dicts (drawn as tables) and dicts of either. A benchmark that has a figure worth
the README lists it under figures["headline"] as {"result", "figure", "target"} rows.

Every `write` regenerates both; by hand: python -m benchmarks.results   (from the repository root: rewrites
benchmarks/RESULTS.md and the table between the README's markers from benchmarks/results/*.json)
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
LOAD_AT_START = os.getloadavg()[0]  # a benchmark imports this module as it starts


def shown(path: Path) -> str:
    """A path as the messages show it: relative to the repository when inside it."""
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def command_line() -> str:
    """The command that started this process, as a user would type it (`python -m benchmarks.NAME ARGS`)."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    head = f"python -m {spec.name}" if spec is not None and spec.name else f"python {shlex.quote(sys.argv[0])}"
    return " ".join([head, *map(shlex.quote, sys.argv[1:])])


def write(name: str, figures: dict[str, Any], command: str | None = None) -> Path:
    """Write one benchmark's figures to benchmarks/results/<name>.json, replacing the last run's, then regenerate
    benchmarks/RESULTS.md and the README's headline table.

    Args:
        name: the benchmark's name (its module's, e.g. "speed").
        figures: JSON-serialisable figures; lists of flat dicts become tables in RESULTS.md, and
            figures["headline"] (rows of {"result", "figure", "target"}) goes into the README's table.
        command: the command that produced them; by default this process's own command line.

    Returns:
        The path written.

    Raises:
        TypeError: when `figures` holds something JSON cannot encode.
        ValueError: when `name` is not a plain file name.
    """
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"a benchmark's name must be a plain file name, got {name!r}")
    from obd.core.cache import atomic_write
    from obd.runtime.bench import machine

    record = {
        "benchmark": name,
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command or command_line(),
        "load": {"start": round(LOAD_AT_START, 2), "end": round(os.getloadavg()[0], 2)},
        "figures": figures,
    }
    text = json.dumps(record, indent=1, ensure_ascii=False) + "\n"  # TypeError here leaves the old file whole
    path = RESULTS / f"{name}.json"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    print(f"wrote {shown(path)}", file=sys.stderr)
    try:
        print(regenerate(), file=sys.stderr)
    except ValueError as e:  # the figures are safe on disk; a broken neighbour file must not lose them
        print(f"benchmarks/RESULTS.md not regenerated: {e}", file=sys.stderr)
    return path


def load() -> list[dict[str, Any]]:
    """Every result file under benchmarks/results, by benchmark name.

    Raises:
        ValueError: when a file is not a result record (it names the file, to delete or re-run).
    """
    records = []
    for path in sorted(RESULTS.glob("*.json")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: not JSON ({e}); delete it or re-run its benchmark") from e
        missing = {"benchmark", "machine", "date", "command", "figures"} - set(record)
        if missing:
            raise ValueError(f"{path}: not a benchmark result (missing {sorted(missing)}); re-run its benchmark")
        records.append(record)
    return records


def cell(value: Any) -> str:
    """One value as markdown table text: integers with thousands separators, floats to 4 significant digits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if value is None or value == [] or value == ():
        return "–"
    if isinstance(value, list | tuple):
        return " / ".join(cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(rows: list[dict[str, Any]]) -> list[str]:
    """Rows of flat dicts as a markdown table; the columns are every key, in first-seen order."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return lines


def section(figures: dict[str, Any], level: int) -> list[str]:
    """A figures dict as markdown: scalars as a list, tables and nested dicts under their own headings."""
    scalars = {k: v for k, v in figures.items() if not isinstance(v, dict | list) or is_scalar_list(v)}
    lines = [f"- {key}: {cell(value)}" for key, value in scalars.items()]
    for key, value in figures.items():
        if key in scalars or key == "headline":  # the headline rows are drawn in the headline table
            continue
        lines += ["", f"{'#' * level} {key}", ""]
        if isinstance(value, dict):
            lines += section(value, level + 1)
        else:
            lines += table([row if isinstance(row, dict) else {"value": row} for row in value])
    return lines


def is_scalar_list(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)


def headline(records: list[dict[str, Any]]) -> list[str]:
    """The README's table: every benchmark's headline rows, with the benchmark and its date."""
    rows = [
        {**row, "benchmark": f"`{r['benchmark']}`, {r['date'][:10]}"}
        for r in records
        for row in r["figures"].get("headline", [])
    ]
    if not rows:
        return ["No benchmark has written a headline yet: run `python -m benchmarks.core` and `benchmarks.speed`."]
    return table(rows)


def results_md(records: list[dict[str, Any]]) -> str:
    """benchmarks/RESULTS.md's text: the headline table, then each benchmark's machine, date and figures."""
    lines = [
        "# Benchmark results",
        "",
        "Generated by `python -m benchmarks.results` from `benchmarks/results/*.json`, which the benchmarks write",
        "(`python -m benchmarks.NAME`); do not edit by hand. Ratios are measured within one run; absolute times",
        "depend on the machine and on what else ran on it.",
        "",
        "## Headline",
        "",
        *headline(records),
    ]
    for r in records:
        load = r.get("load")
        busy = f", load average {load['start']:g} at the start and {load['end']:g} at the end" if load else ""
        lines += ["", f"## {r['benchmark']}", "", f"`{r['command']}` on {r['machine']}, {r['date']}{busy}", ""]
        lines += section(r["figures"], 3)
    return "\n".join(lines) + "\n"


def update_readme(records: list[dict[str, Any]], readme: Path | None = None) -> bool:
    """Replace the README's text (`readme`, by default the repository's) between its results markers with the
    headline table.

    Returns:
        Whether the README changed.

    Raises:
        ValueError: when the README lacks the markers.
    """
    readme = readme or README
    text = readme.read_text(encoding="utf-8")
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise ValueError(f"{readme}: no {BEGIN} … {END} markers for the headline table; put them back")
    new = text[: start + len(BEGIN)] + "\n" + "\n".join(headline(records)) + "\n" + text[end:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


def regenerate() -> str:
    """Rewrite benchmarks/RESULTS.md and the README's headline table from every result file.

    Returns:
        A line saying what was written.

    Raises:
        ValueError: for a result file that is not a record, or a README without its markers.
    """
    records = load()
    readme = "updated" if update_readme(records) else "unchanged"
    RESULTS_MD.write_text(results_md(records), encoding="utf-8")
    return f"wrote {shown(RESULTS_MD)} from {len(records)} results; README {readme}"


def main() -> None:
    try:
        print(regenerate())
    except ValueError as e:
        raise SystemExit(f"benchmarks.results: error: {e}") from None


if __name__ == "__main__":
    main()
