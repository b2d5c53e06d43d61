"""``python -m benchmarks embed``: the local embedder's runtimes side by side, in one run.

Compares ``LocalEmbeddings(runtime="onnx")`` (the default) with ``runtime="torch"``
(sentence-transformers, the path before issue 21) on this machine, interleaved so that
load from other processes hits both alike:

* cold start: a fresh process, from before ``import llmemo.local`` to the first vector
  (and the process's wall time, interpreter included); the ONNX graph cached, and once
  with an empty cache (the first load on a machine, which builds the graph);
* RSS of that process after the first vector and after a batch of 64 texts;
* warm single-query latency (``embed_query`` of a text not seen before), p50 / p99; torch
  with one thread and with its default;
* throughput of 1 / 16 / 64 concurrent lookups of new prompts in an
  ``InMemorySemanticCache`` (embedding included), torch as it runs by default (today's
  path) against ONNX with its defaults;
* ``llmemo eval`` figures (threshold only and threshold + RulesVerifier: recall and
  false hits at the default threshold, recall at <= 1 % false hits) on every pair file
  of the evaluation directory with each runtime, and the cosine between the two
  runtimes' vectors of every text in those files.

Needs the ``local`` and ``local-torch`` extras. Writes
``benchmarks/results/<date>-<host>-embed.md`` and the ``embed`` section of RESULTS.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SECTION_BEGIN = "<!-- embed:begin (python -m benchmarks embed) -->"
SECTION_END = "<!-- embed:end -->"
RUNTIMES = ("onnx", "torch")

_COLD_SCRIPT = r"""
import json, sys, time
started = time.perf_counter()
from llmemo.local import LocalEmbeddings
embeddings = LocalEmbeddings(runtime=sys.argv[1])
embeddings.embed_query("What is the capital of France?")
first = time.perf_counter() - started

def rss():
    fields = dict(
        line.split(":", 1) for line in open("/proc/self/status").read().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

rss_first, _ = rss()
embeddings.embed_documents([f"question {i}: how do I reset item {i}?" for i in range(64)])
rss_batch, peak = rss()
print(json.dumps({"first": first, "rss_first": rss_first, "rss_batch": rss_batch,
                  "peak": peak, "torch": "torch" in sys.modules}))
"""


def _cold(runtime: str, cache_dir: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["LLMEMO_CACHE_DIR"] = cache_dir
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", _COLD_SCRIPT, runtime],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=True,
    )
    wall = time.perf_counter() - started
    data: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    data["wall"] = wall
    return data


def _texts(eval_dir: Path | None, count: int) -> list[str]:
    """``count`` distinct prompts: from the evaluation files if given, else generated."""
    texts: list[str] = []
    if eval_dir is not None:
        for path in sorted(eval_dir.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                texts.extend(t for t in (row["b"], row["a"]) if isinstance(t, str) and t)
    texts = list(dict.fromkeys(texts))
    rng = np.random.default_rng(21)
    rng.shuffle(texts)
    verbs = ["reset", "update", "cancel", "renew", "transfer", "unlock", "close", "move"]
    nouns = ["account", "card", "order", "plan", "password", "address", "device", "invoice"]
    i = 0
    while len(texts) < count:
        texts.append(f"How do I {verbs[i % 8]} my {nouns[(i // 8) % 8]} number {i}?")
        i += 1
    return texts[:count]


def _percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def _single(
    models: dict[str, Any], texts: list[str], rounds: int, per_round: int
) -> dict[str, list[float]]:
    """Sequential embed_query latencies (s) of new texts, interleaved by blocks."""
    import torch

    default_threads = torch.get_num_threads()
    times: dict[str, list[float]] = {name: [] for name in models}
    cursor = 0
    for _ in range(rounds):
        for name, (model, threads) in models.items():
            if threads is not None:
                torch.set_num_threads(threads)
            for text in texts[cursor : cursor + per_round]:
                started = time.perf_counter()
                model.embed_query(text)
                times[name].append(time.perf_counter() - started)
            torch.set_num_threads(default_threads)
        cursor += per_round
    return times


async def _throughput(embeddings: Any, texts: list[str], concurrency: int) -> tuple[float, int]:
    """Lookups per second of new prompts at ``concurrency``, and how many hit."""
    from langchain_core.outputs import Generation

    from llmemo.langchain import InMemorySemanticCache

    cache = InMemorySemanticCache(embeddings, distance_threshold=0.2)
    for i in range(50):
        await cache.aupdate(f"stored question {i} about item {i}", "m", [Generation(text="x")])
    queue = list(texts)
    hits = 0

    async def worker() -> None:
        nonlocal hits
        while queue:
            text = queue.pop()
            if await cache.alookup(text, "m") is not None:
                hits += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    return len(texts) / elapsed, hits


class _Recording:
    """A LangChain ``Embeddings`` that keeps every vector it returns (text -> vector)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.vectors: dict[str, Any] = {}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.inner.embed_documents(texts)
        for text, vector in zip(texts, vectors, strict=True):
            self.vectors[text] = np.asarray(vector, dtype=np.float64)
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def _eval(models: dict[str, Any], eval_dir: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import io

    from llmemo.evaluate import evaluate_file
    from llmemo.verify.rules import RulesVerifier

    rows: list[dict[str, Any]] = []
    recorders = {name: _Recording(model) for name, model in models.items()}
    for path in sorted(eval_dir.glob("*.jsonl")):
        for name, recorder in recorders.items():
            started = time.perf_counter()
            result = evaluate_file(
                path, recorder, verifier=RulesVerifier(), baseline=True, stream=io.StringIO()
            )
            elapsed = time.perf_counter() - started
            for config in result.configs:
                recall, false_hits = config.rates(config.threshold)
                at = config.recall_at(0.01)
                rows.append(
                    {
                        "file": path.name,
                        "runtime": name,
                        "config": config.label,
                        "recall": recall,
                        "false_hits": false_hits,
                        "recall_at_1pct": None if at is None else at[0],
                        "seconds": elapsed,
                    }
                )
    first, second = (recorders[n].vectors for n in RUNTIMES)
    common = sorted(set(first) & set(second))
    a = np.stack([first[t] for t in common])
    b = np.stack([second[t] for t in common])
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    cosines = (a * b).sum(axis=1)
    worst = int(cosines.argmin())
    agreement = {
        "texts": len(common),
        "min": float(cosines.min()),
        "mean": float(cosines.mean()),
        "worst_text": common[worst][:80],
    }
    return rows, agreement


def run(
    *,
    eval_dir: Path | None,
    rounds: int,
    quick: bool,
    out: Path | None,
    results_md: Path | None,
    command: str,
) -> str:
    """Measure everything above; return the Markdown report (also written if asked)."""
    import torch

    from llmemo import _local_runtimes
    from llmemo.local import LocalEmbeddings

    cold_rounds = 1 if quick else max(1, min(rounds, 3))
    lines: list[str] = []
    stamp = time.strftime("%Y-%m-%d %H:%M")
    torch_default = torch.get_num_threads()
    onnx_threads = _local_runtimes.default_threads()
    load = os.getloadavg()

    # Cold start and RSS: fresh processes, runtimes alternating.
    _cold("onnx")  # make sure the graph is cached for the "cached" rows
    cold: dict[str, list[dict[str, Any]]] = {name: [] for name in RUNTIMES}
    for _ in range(cold_rounds):
        for name in RUNTIMES:
            cold[name].append(_cold(name))
    with tempfile.TemporaryDirectory() as empty:
        first_ever = _cold("onnx", empty)

    # Warm single query.
    onnx = LocalEmbeddings()
    torch_model = LocalEmbeddings(runtime="torch")
    onnx.warm_up()
    torch_model.warm_up()
    per_round = 10 if quick else 40
    single_rounds = 1 if quick else max(rounds, 3)
    texts = _texts(eval_dir, per_round * single_rounds + 4000)
    single = _single(
        {
            "onnx": (onnx, None),
            "torch, 1 thread": (torch_model, 1),
            f"torch, {torch_default} threads (default)": (torch_model, None),
        },
        texts,
        single_rounds,
        per_round,
    )
    used = per_round * single_rounds

    # Throughput of new-prompt lookups (each runtime gets the same texts, its own cache).
    levels = (1, 16, 64)
    counts = {1: 16 if quick else 48, 16: 32 if quick else 256, 64: 64 if quick else 512}
    throughput: dict[tuple[str, int], list[float]] = {}
    hits: dict[tuple[str, int], int] = {}
    models = {"onnx": onnx, "torch": torch_model}
    tp_rounds = 1 if quick else 2
    for round_index in range(tp_rounds):
        for level in levels:
            batch = texts[used : used + counts[level]]
            used += counts[level]
            for name, model in models.items():
                rate, hit = asyncio.run(_throughput(model, batch, level))
                throughput.setdefault((name, level), []).append(rate)
                hits[(name, level)] = hits.get((name, level), 0) + hit
        del round_index

    eval_rows: list[dict[str, Any]] = []
    agreement: dict[str, Any] | None = None
    if eval_dir is not None and not quick:
        eval_rows, agreement = _eval(models, eval_dir)

    # -- report -----------------------------------------------------------------------
    def med(values: Sequence[float]) -> float:
        return statistics.median(values)

    onnx_p50 = med(single["onnx"])
    torch1_p50 = med(single["torch, 1 thread"])
    tp64 = med(throughput[("onnx", 64)]) / med(throughput[("torch", 64)])
    cold_onnx = med([c["first"] for c in cold["onnx"]])
    lines += [
        f"## Local embedder: ONNX Runtime vs torch (issue 21), {stamp}",
        "",
        f"Command: `{command}`. Machine: {platform.machine()}, "
        f"{_local_runtimes.usable_cpus()} usable CPUs, load average at start "
        f"{load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (shared with other sessions: "
        "read ratios, measured in this run, rather than absolute times). ONNX Runtime "
        f"{_version('onnxruntime')} with {onnx_threads} intra-op thread(s) (the default here); "
        f"torch {torch.__version__}, sentence-transformers {_version('sentence_transformers')}.",
        "",
        "#### Targets",
        "",
        "| target | measured | holds |",
        "|---|---|---|",
        f"| warm single query <= 0.25x torch (1 thread) | {onnx_p50 / torch1_p50:.2f}x "
        f"({onnx_p50 * 1e3:.2f} ms vs {torch1_p50 * 1e3:.2f} ms p50) "
        f"| {_yes(onnx_p50 <= 0.25 * torch1_p50)} |",
        f"| warm single query <= 3 ms p50 | {onnx_p50 * 1e3:.2f} ms | {_yes(onnx_p50 <= 0.003)} |",
        f"| 64 concurrent new-prompt lookups >= 5x torch's throughput | {tp64:.1f}x "
        f"| {_yes(tp64 >= 5)} |",
        f"| cold start to first vector <= 1.5 s (graph cached) | {cold_onnx:.2f} s "
        f"| {_yes(cold_onnx <= 1.5)} |",
        "| `import torch` never on the lookup path (default runtime) | torch imported: "
        f"{any(c['torch'] for c in cold['onnx'])} | "
        f"{_yes(not any(c['torch'] for c in cold['onnx']))} |",
    ]
    if agreement is not None:
        lines.append(
            f"| cosine >= 0.995 to torch on every evaluation text | min {agreement['min']:.6f} "
            f"over {agreement['texts']:,} texts | {_yes(agreement['min'] >= 0.995)} |"
        )
        moves = _eval_moves(eval_rows)
        lines.append(
            f"| eval figures move <= 1 point between runtimes | largest move {moves:.2f} "
            f"points | {_yes(moves <= 1.0)} |"
        )
    lines += [
        "",
        f"#### Cold start: fresh process to first vector (median of {cold_rounds}) and RSS",
        "",
        "| runtime | first vector (s) | process wall (s) | RSS at first vector (MB) "
        "| RSS after 64 texts (MB) | peak RSS (MB) | torch imported |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name in RUNTIMES:
        runs = cold[name]

        def of(key: str, runs: list[dict[str, Any]] = runs) -> float:
            return med([c[key] for c in runs])

        lines.append(
            f"| {name} | {of('first'):.2f} | {of('wall'):.2f} | {of('rss_first'):.0f} "
            f"| {of('rss_batch'):.0f} | {of('peak'):.0f} | {runs[0]['torch']} |"
        )
    lines.append(
        f"| onnx, empty cache (builds the graph once per machine) | {first_ever['first']:.2f} "
        f"| {first_ever['wall']:.2f} | {first_ever['rss_first']:.0f} "
        f"| {first_ever['rss_batch']:.0f} | {first_ever['peak']:.0f} | {first_ever['torch']} |"
    )
    lines += [
        "",
        f"#### Warm single query (`embed_query` of a new text; {len(single['onnx'])} each, "
        f"interleaved blocks of {per_round})",
        "",
        "| runtime | p50 (ms) | p99 (ms) | x torch 1 thread (p50) |",
        "|---|---:|---:|---:|",
    ]
    for name, values in single.items():
        lines.append(
            f"| {name} | {med(values) * 1e3:.2f} | {_percentile(values, 99) * 1e3:.2f} "
            f"| {med(values) / torch1_p50:.2f}x |"
        )
    lines += [
        "",
        "#### Lookups of new prompts in an `InMemorySemanticCache`, embedding included "
        f"(lookups/s, median of {tp_rounds}; {counts[1]}/{counts[16]}/{counts[64]} lookups "
        "per run)",
        "",
        "| concurrency | onnx | torch (default threads: today's path) | onnx / torch |",
        "|---:|---:|---:|---:|",
    ]
    for level in levels:
        o, t = med(throughput[("onnx", level)]), med(throughput[("torch", level)])
        lines.append(f"| {level} | {o:,.0f} | {t:,.0f} | {o / t:.1f}x |")
    if onnx._batcher is not None:
        lines.append(
            f"\nONNX passes: {onnx._batcher.passes:,} for {onnx._batcher.texts_run:,} texts "
            "over the whole run (micro-batching merges concurrent requests)."
        )
    if agreement is not None:
        lines += [
            "",
            "#### `llmemo eval` figures with each runtime (default threshold 0.35)",
            "",
            f"Vectors of the two runtimes: cosine min {agreement['min']:.6f}, mean "
            f"{agreement['mean']:.7f} over {agreement['texts']:,} distinct texts of every "
            f"file in the evaluation directory (worst: {agreement['worst_text']!r}).",
            "",
            "| file | configuration | runtime | recall | false hits | recall at <= 1 % "
            "false hits | eval time (s) |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for row in eval_rows:
            lines.append(
                f"| {row['file']} | {row['config']} | {row['runtime']} | {_pct(row['recall'])} "
                f"| {_pct(row['false_hits'])} | {_pct(row['recall_at_1pct'])} "
                f"| {row['seconds']:.1f} |"
            )
    report = "\n".join(lines) + "\n"
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        name = f"{time.strftime('%Y-%m-%d')}-{platform.node()}-embed.md"
        (out / name).write_text("# " + report.lstrip("# "))
    if results_md is not None:
        _update_results_md(results_md, report)
    return report


def _eval_moves(rows: list[dict[str, Any]]) -> float:
    """The largest difference, in percentage points, of any figure between runtimes."""
    by_key: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
    for row in rows:
        by_key.setdefault((row["file"], row["config"]), {})[row["runtime"]] = row
    largest = 0.0
    for pair in by_key.values():
        a, b = (pair[n] for n in RUNTIMES)
        for metric in ("recall", "false_hits", "recall_at_1pct"):
            if a[metric] is not None and b[metric] is not None:
                largest = max(largest, 100 * abs(a[metric] - b[metric]))
    return largest


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _yes(ok: bool) -> str:
    return "yes" if ok else "**no**"


def _version(module: str) -> str:
    try:
        return str(__import__(module).__version__)
    except Exception:
        return "?"


def _update_results_md(path: Path, report: str) -> None:
    block = f"{SECTION_BEGIN}\n{report.rstrip()}\n{SECTION_END}\n"
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    pattern = re.compile(re.escape(SECTION_BEGIN) + r".*?" + re.escape(SECTION_END) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        marker = "## Other runs"
        index = text.find(marker)
        text = (
            text[:index] + block + "\n" + text[index:]
            if index >= 0
            else text.rstrip() + "\n\n" + block
        )
    path.write_text(text)
