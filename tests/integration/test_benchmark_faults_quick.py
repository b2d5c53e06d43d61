"""``python -m benchmarks faults --quick`` runs end to end, so the time-to-miss figures in
docs/failure-behaviour.md can always be reproduced."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.redis
@pytest.mark.slow
def test_faults_benchmark_quick_mode() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "faults", "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    labels = {row.split("|")[1].strip() for row in rows[1:]}
    for label in (
        "dead port (connection refused)",
        "killed (SIGKILL, pooled connections dead)",
        "paused (CLIENT PAUSE ALL)",
        "busy (DEBUG SLEEP)",
        "black-holed connection (proxy)",
        "breaker open (after the dead-port failures)",
    ):
        assert label in labels
    # A hung server costs an async lookup its budget (0.1 s), not more than a few times it.
    for row in rows[1:]:
        cells = [cell.strip() for cell in row.split("|")[1:-1]]
        if cells[0].startswith(("paused", "busy", "black-holed")) and cells[1] == "async":
            assert 90 <= float(cells[3]) <= 400, row
