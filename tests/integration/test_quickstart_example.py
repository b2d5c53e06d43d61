"""The README's first command runs examples/quickstart.py: it must keep working."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quickstart.py"


def test_quickstart_shows_an_exact_and_a_semantic_hit() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLE), "--latency", "0.2"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    out = result.stdout
    assert "(served from cache)" in out
    assert "'Can you tell me the capital city of France?' -> 'Paris.' (cache hit" in out
    assert "'What is the capital of France?' -> 'Paris.' (model call)" in out
    assert "(model call)" in out.split("largest planet in our solar system?")[1]
    assert "model calls: 2 for 3 questions" in out
