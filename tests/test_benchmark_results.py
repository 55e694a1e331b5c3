"""benchmarks/results.py: a benchmark's figures land in benchmarks/results/<name>.json with the machine, date and
command, and RESULTS.md and the README's headline table are made from those files, never copied by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import results

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tmp_results(tmp_path, monkeypatch):
    """benchmarks.results pointed at a scratch results folder, RESULTS.md and README."""
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\nbefore\n{results.BEGIN}\nstale table\n{results.END}\nafter\n")
    monkeypatch.setattr(results, "RESULTS", tmp_path / "results")
    monkeypatch.setattr(results, "RESULTS_MD", tmp_path / "RESULTS.md")
    monkeypatch.setattr(results, "README", readme)
    return tmp_path


def test_write_records_the_run_and_regenerates_the_tables(tmp_results):
    figures = {
        "model": "784-10",
        "timings": [{"what": "evaluate", "ms": 12.5}, {"what": "mask", "ms": 0.25}],
        "headline": [{"result": "evaluate the test set", "figure": "12 ms", "target": "≤ 600 ms"}],
    }
    path = results.write("demo", figures, "python -m benchmarks.demo --quick")
    record = json.loads(path.read_text())
    assert path == tmp_results / "results" / "demo.json"
    assert record["benchmark"] == "demo" and record["command"] == "python -m benchmarks.demo --quick"
    assert record["figures"] == figures
    assert "cores" in record["machine"] and record["date"].endswith("UTC")
    assert set(record["load"]) == {"start", "end"}

    md = (tmp_results / "RESULTS.md").read_text()
    assert "## demo" in md and record["machine"] in md and "--quick" in md
    assert "| evaluate | 12.5 |" in md and "| mask | 0.25 |" in md
    readme = (tmp_results / "README.md").read_text()
    assert "stale table" not in readme and readme.startswith("# x\n\nbefore\n") and readme.endswith("after\n")
    assert "| evaluate the test set | 12 ms | ≤ 600 ms | `demo`, " in readme


def test_bad_names_and_files_are_refused_with_what_to_do(tmp_results):
    with pytest.raises(ValueError, match="plain file name"):
        results.write("../escape", {})
    (tmp_results / "results").mkdir()
    (tmp_results / "results" / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="broken.json.*re-run"):
        results.load()
    (tmp_results / "README.md").write_text("no markers here\n")
    (tmp_results / "results" / "broken.json").unlink()
    with pytest.raises(ValueError, match="markers"):
        results.update_readme([])


def test_readme_is_short_starts_with_the_two_commands_and_holds_the_generated_table():
    text = (ROOT / "README.md").read_text()
    lines = text.splitlines()
    assert len(lines) <= 300
    assert lines[0] == "```bash"
    assert lines[1].startswith("python3.11 -m venv .venv && . .venv/bin/activate && pip install -r requirements.txt")
    assert "streamlit run app.py" in lines[1]
    assert lines[2].startswith(". .venv/bin/activate && python -m pytest")
    start, end = text.index(results.BEGIN) + len(results.BEGIN), text.index(results.END)
    assert text[start:end].strip() == "\n".join(results.headline(results.load())).strip()
