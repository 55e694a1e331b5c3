"""`python -m obd` as a user runs it: a subprocess in the project's folder, with this test session's environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_cli(*args: object, cache: Path | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m obd *args`; cache: an OBD_CACHE_DIR other than the session's. Returns the finished process
    (its exit code, and stdout and stderr as text)."""
    env = dict(os.environ)
    if cache is not None:
        env["OBD_CACHE_DIR"] = str(cache)
    return subprocess.run(
        [sys.executable, "-m", "obd", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
