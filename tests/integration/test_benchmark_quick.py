"""The benchmark's quick mode runs against the test Redis, so the suite never rots."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def quick_run(mode: str, *args: str, timeout: float = 300) -> str:
    """The standard output of ``python -m benchmarks MODE --quick ARGS`` (which must exit 0)."""
    result = subprocess.run(
        [sys.executable, "-m", "benchmarks", mode, "--quick", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
    )
    return result.stdout


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.vectorset
def test_hits_benchmark_quick_mode(redis_url: str) -> None:
    out = quick_run("hits", "--redis-url", redis_url)
    for title in (
        "Exact hit, async",
        "Exact hit, sync",
        "Semantic hit, redisearch",
        "Semantic hit, vectorset",
    ):
        assert title in out
    assert out.count("| floor |") == 4
    assert "llmemo RedisCache.alookup (LangChain)" in out


@pytest.mark.redis
@pytest.mark.redisearch
def test_dtype_benchmark_quick_mode(redis_url: str) -> None:
    out = quick_run("dtype", "--redis-url", redis_url)
    rows = [line for line in out.splitlines() if line.startswith("| FLOAT")]
    assert [row.split(" | ")[0] for row in rows] == ["| FLOAT32", "| FLOAT16"]
    float32, float16 = (float(row.split(" | ")[1].replace(",", "")) for row in rows)
    assert 0 < float16 < float32  # half-size vectors take less memory per entry
    for row in rows:
        hits, lookups = row.split(" | ")[3].split(" (")[0].split(" / ")
        assert int(lookups.replace(",", "")) > 0
        assert int(hits.replace(",", "")) > 0
    assert out.count("| floor |") == 1
    assert "llmemo RedisSemanticCache, dtype=FLOAT16" in out


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.vectorset
@pytest.mark.slow
def test_full_suite_quick_mode(redis_url: str, tmp_path: Path) -> None:
    """``python -m benchmarks all --quick`` runs every section end to end and writes its
    report, JSON (and charts when matplotlib is there); alternatives that are not installed
    are skipped with a note, never an error."""
    import importlib.util
    import json

    results_md = ROOT / "benchmarks" / "RESULTS.md"
    before = results_md.read_text() if results_md.exists() else None
    out = quick_run("all", "--redis-url", redis_url, "--out", str(tmp_path), timeout=600)
    for title in (
        "Targets of issue 6",
        "Exact lookup, async",
        "Exact lookup, sync (no event loop)",
        "Exact update, async",
        "Exact hit throughput",
        "Semantic hit, 100 entries, embedding excluded",
        "Semantic hit, 300 entries, embedding excluded",
        "Semantic hit with a 20 ms embedder",
        "Round trips and server time per operation",
        "Memory per entry",
        "Import time",
    ):
        assert title in out, title
    assert "| llmemo RedisCache.alookup hit |" in out
    assert "| raw FT.SEARCH KNN EF_RUNTIME 100, llmemo HNSW index |" in out
    assert "| `import llmemo` |" in out
    for module, name in (("langchain_redis", "langchain-redis"), ("gptcache", "GPTCache")):
        if importlib.util.find_spec(module) is None:
            assert f"{name} skipped: not installed" in out
    (report,) = tmp_path.glob("*.md")
    assert report.read_text() == out
    (data_file,) = tmp_path.glob("*.json")
    data = json.loads(data_file.read_text())
    assert {t["target"] for t in data["targets"]} >= {"exact hit, async", "import llmemo"}
    assert data["round_trips"] and data["memory"] and data["imports"]
    if importlib.util.find_spec("matplotlib") is not None:
        assert len(list(tmp_path.glob("*.png"))) == 3
    after = results_md.read_text() if results_md.exists() else None
    assert after == before, "--quick must not touch RESULTS.md"


@pytest.mark.redis
@pytest.mark.redisearch
@pytest.mark.vectorset
def test_partitions_benchmark_quick_mode(redis_url: str) -> None:
    out = quick_run("partitions", "--redis-url", redis_url)
    for title in (
        "Semantic hit, one partition of 300 entries",
        "Semantic hit, one partition of 1,200 entries",
        "Semantic hit in a 100-entry partition inside 1,200 entries",
        "### Near-duplicate recall",
    ):
        assert title in out
    # Every lookup of the tiny run found its entry (a miss would be a fast, false row).
    recall = [line for line in out.splitlines() if "RediSearch HNSW | " in line and "%)" in line]
    assert recall and all("300/300" in line for line in recall)
    assert "100-entry partition, new prompts" in out
