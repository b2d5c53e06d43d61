"""The benchmark's quick mode runs against the test Redis, so the suite never rots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.vectorset
def test_hits_benchmark_quick_mode(redis_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", "hits", "--quick", "--redis-url", redis_url],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    out = result.stdout
    for title in (
        "Exact hit, async",
        "Exact hit, sync",
        "Semantic hit, redisearch",
        "Semantic hit, vectorset",
    ):
        assert title in out
    assert out.count("| floor |") == 4
    assert "llmemo RedisCache.alookup (LangChain)" in out
