"""The suite's outputs: a Markdown report, a JSON file, PNG charts and the RESULTS.md section."""

from __future__ import annotations

import json
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks.suite import CONCURRENCY, Results

SECTION_BEGIN = "<!-- benchmark-suite:begin (written by `python -m benchmarks all`) -->"
SECTION_END = "<!-- benchmark-suite:end -->"


def _fmt(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return ""
    return f"{value:,.{digits}f}{suffix}"


def header(r: Results) -> str:
    m = r.meta
    server = m.get("redis_server", {})
    versions = ", ".join(f"{k} {v}" for k, v in m.get("versions", {}).items())
    return (
        f"Machine: {m.get('host')}, {m.get('machine')}, Python {m.get('python')}; Redis "
        f"{server.get('version')} ({', '.join(server.get('modules', []))}), on loopback.\n\n"
        f"Command: `{m.get('command')}` — {m.get('rounds')} interleaved rounds, semantic sizes "
        f"{', '.join(f'{s:,}' for s in m.get('sizes', []))}; ran "
        f"{m.get('duration_s', 0) / 60:.1f} min.\n\n"
        f"Versions: {versions}; llmemo from {m.get('llmemo_source', '?')}.\n\n"
        "Ratios are medians over medians measured in the same rounds (the machine is shared: "
        "absolute figures vary from run to run, ratios much less).\n"
    )


def targets_table(r: Results) -> str:
    lines = [
        "#### Targets of issue 6",
        "",
        "| target | limit | measured | held | how |",
        "|---|---|---:|---|---|",
    ]
    for t in r.targets:
        held = "yes" if t["held"] else "**no**"
        measured = t["measured"]
        shown = f"{measured:,.2f}" if isinstance(measured, float) else str(measured)
        if "x" in t["limit"] or "faster" in t["target"]:
            shown += "x"
        elif "ms" in t["limit"]:
            shown += " ms"
        lines.append(f"| {t['target']} | {t['limit']} | {shown} | {held} | {t['how']} |")
    return "\n".join(lines) + "\n"


def notes(r: Results) -> str:
    if not r.notes:
        return ""
    return "Notes:\n\n" + "\n".join(f"- {n}" for n in r.notes) + "\n"


def redis_benchmark_table(r: Results) -> str:
    if not r.redis_benchmark:
        return ""
    lines = [
        "#### redis-benchmark: GET of the same stored payload",
        "",
        "| clients | requests | requests/s | p50 µs | mean µs |",
        "|---:|---:|---:|---:|---:|",
    ]
    for b in r.redis_benchmark:
        lines.append(
            f"| {b['clients']} | {b['requests']:,} | {b['rps']:,.0f} | {b['p50_us']:,.0f} | "
            f"{b['avg_us']:,.0f} |"
        )
    return "\n".join(lines) + "\n"


def round_trip_table(r: Results) -> str:
    lines = [
        "#### Round trips and server time per operation",
        "",
        "Round trips: redis-py socket writes per operation (a pipeline or script is one). "
        "Commands: what the client sent; the server also counts commands run inside scripts. "
        "Server µs: `INFO commandstats` usec of the commands sent, per operation.",
        "",
        "| operation | round trips | commands sent | server-side commands | server µs |",
        "|---|---:|---|---|---:|",
    ]

    def counts(items: dict[str, float]) -> str:
        return " + ".join(
            f"{v:g} {k}" if abs(v - 1) > 1e-9 else k for k, v in items.items() if v >= 0.005
        )

    for item in r.round_trips:
        lines.append(
            f"| {item['operation']} | {item['round_trips']:.2f} | {counts(item['commands_sent'])} "
            f"| {counts(item['server_commands'])} | {item['server_us']:.1f} |"
        )
    return "\n".join(lines) + "\n"


def memory_table(r: Results) -> str:
    lines = [
        "#### Memory per entry (`INFO memory` used_memory delta / entries)",
        "",
        "| kind | cache | entries | bytes/entry | ratio | MEMORY USAGE of one key |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for item in r.memory:
        if item["section"] == "exact":
            ratio = f"{item['x_floor']:.2f}x same bytes, {item['x_json_floor']:.2f}x JSON"
        else:
            x = item.get("x_langchain_redis")
            ratio = "" if x is None else f"{x:.2f}x langchain-redis"
        usage = item.get("memory_usage_one_key")
        lines.append(
            f"| {item['section']} | {item['name']} | {item['entries']:,} | "
            f"{item['bytes_per_entry']:,.0f} | {ratio} | {'' if usage is None else usage} |"
        )
    payload = r.meta.get("exact_payload_bytes")
    lc = r.meta.get("langchain_json_payload_bytes")
    if payload and lc:
        lines += [
            "",
            f"Payload: llmemo's stored entry is {payload:,} bytes; LangChain's JSON of the "
            f"same generation {lc:,} bytes. Every Redis entry has a 1-hour TTL; exact entries "
            "hold distinct answers (RedisJSON interns equal strings).",
        ]
    return "\n".join(lines) + "\n"


def load_table(r: Results) -> str:
    if not r.loads:
        return ""
    lines = [
        "#### Loading the semantic caches (each through its own write path)",
        "",
        "| cache | entries | seconds | entries/s | bytes/entry (this step) | write path |",
        "|---|---|---:|---:|---:|---|",
    ]
    for item in r.loads:
        lines.append(
            f"| {item['name']} | {item['from']:,} → {item['to']:,} | {item['seconds']:.1f} | "
            f"{item['entries_per_s']:,.0f} | {_fmt(item['bytes_per_entry'], 0)} | "
            f"{item['path']} |"
        )
    return "\n".join(lines) + "\n"


def import_table(r: Results) -> str:
    if not r.imports:
        return ""
    lines = [
        "#### Import time (fresh interpreter, median)",
        "",
        "| module | -X importtime ms | wall ms (minus `python -c pass`) |",
        "|---|---:|---:|",
    ]
    for module, item in r.imports.items():
        lines.append(f"| `import {module}` | {item['importtime_ms']:.0f} | {item['wall_ms']:.0f} |")
    return "\n".join(lines) + "\n"


def semantic_matrix(r: Results) -> str:
    sizes = sorted({s for by in r.semantic_latency.values() for s in by})
    if not sizes:
        return ""
    head = "| variant | " + " | ".join(f"{s:,}: median µs (x floor)" for s in sizes) + " |"
    lines = [
        "#### Semantic hit latency vs entries, embedding excluded",
        "",
        head,
        "|---|" + "---:|" * len(sizes),
    ]
    for name, by_size in r.semantic_latency.items():
        cells = []
        for s in sizes:
            median = by_size.get(s)
            x = r.semantic_x_floor.get(name, {}).get(s)
            cells.append("" if median is None else f"{median:,.0f}" + (f" ({x:.2f}x)" if x else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def full_report(r: Results, charts: list[str]) -> str:
    title = "llmemo benchmark suite" + (" (quick)" if r.meta.get("quick") else "")
    parts = [
        f"### {title} — {r.meta.get('date')}\n",
        header(r),
        targets_table(r),
        notes(r),
        *r.markdown,
        semantic_matrix(r),
        redis_benchmark_table(r),
        round_trip_table(r),
        memory_table(r),
        load_table(r),
        import_table(r),
    ]
    if charts:
        parts.append("\n".join(f"![{Path(c).stem}]({c})" for c in charts) + "\n")
    return "\n".join(p for p in parts if p)


def summary(r: Results, charts: list[str], report_name: str) -> str:
    """The RESULTS.md section: targets, the key tables, charts, a link to the full report."""
    keep = ("Exact lookup, async", "Exact lookup, sync", "Exact hit throughput")
    tables = [m for m in r.markdown if m.startswith(tuple(f"#### {k}" for k in keep))]
    parts = [
        "## Full suite: llmemo vs alternatives and the Redis floor\n",
        f"Latest run: {r.meta.get('date')}. Full tables: [{report_name}](results/{report_name}).\n",
        header(r),
        targets_table(r),
        notes(r),
        *tables,
        semantic_matrix(r),
        memory_table(r),
        round_trip_table(r),
        import_table(r),
    ]
    if charts:
        parts.append("\n".join(f"![{Path(c).stem}](results/{Path(c).name})" for c in charts) + "\n")
    return "\n".join(p for p in parts if p)


def charts(r: Results, out_dir: Path, stem: str) -> list[str]:
    """PNG charts next to the report; returns their file names ([] without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        r.notes.append("charts skipped: matplotlib is not installed")
        return []
    made = []
    colors = plt.get_cmap("tab20").colors

    def style_of(index: int, name: str) -> dict[str, Any]:
        floor = name.startswith("raw")
        return {
            "color": colors[index % len(colors)],
            "linestyle": "--" if floor else "-",
            "marker": "s" if floor else "o",
            "linewidth": 1.2 if floor else 2.0,
            "alpha": 0.75 if floor else 1.0,
        }

    if r.semantic_latency:
        fig, ax = plt.subplots(figsize=(12, 6))
        shown = [n for n in r.semantic_latency if "exact_first=False" not in n]
        for index, name in enumerate(shown):
            by_size = r.semantic_latency[name]
            sizes = sorted(by_size)
            ax.plot(sizes, [by_size[s] for s in sizes], label=name, **style_of(index, name))
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("entries in the cache")
        ax.set_ylabel("median hit latency, µs (log)")
        ax.set_title("Semantic hit latency vs entries (embedding excluded; dashed: raw Redis)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        fig.tight_layout()
        name = f"{stem}-latency.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        made.append(name)

    groups = [(k, v) for k, v in r.throughput.items() if v]
    if groups:
        fig, axes = plt.subplots(1, len(groups), figsize=(5.5 * len(groups), 5.5), squeeze=False)
        for ax, (title, result) in zip(axes[0], groups, strict=True):
            for index, (name, by_c) in enumerate(result.items()):
                ax.plot(
                    CONCURRENCY,
                    [by_c[c] for c in CONCURRENCY],
                    label=name,
                    **style_of(index, name),
                )
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xticks(CONCURRENCY, [str(c) for c in CONCURRENCY])
            ax.set_xlabel("concurrent tasks on one event loop")
            ax.set_ylabel("operations/s (log)")
            ax.set_title(title, fontsize=10)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.14))
        fig.tight_layout()
        name = f"{stem}-throughput.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        made.append(name)

    if r.memory:
        labels = [f"{m['section']}: {m['name']}" for m in r.memory]
        values = [m["bytes_per_entry"] for m in r.memory]
        fig, ax = plt.subplots(figsize=(9, 0.45 * len(labels) + 1.5))
        colors = ["tab:blue" if m["name"].startswith("llmemo") else "tab:gray" for m in r.memory]
        ax.barh(labels, values, color=colors)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:,.0f}", va="center", fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("bytes per entry (Redis used_memory delta)")
        ax.set_title("Memory per entry, 500-character chat response")
        fig.tight_layout()
        name = f"{stem}-memory.png"
        fig.savefig(out_dir / name, dpi=110)
        plt.close(fig)
        made.append(name)
    return made


def update_results_md(path: Path, section: str) -> None:
    """Replace (or append) this suite's section of RESULTS.md, leaving the rest alone."""
    block = f"{SECTION_BEGIN}\n{section.rstrip()}\n{SECTION_END}\n"
    if path.exists():
        text = path.read_text()
        pattern = re.compile(
            re.escape(SECTION_BEGIN) + r".*?" + re.escape(SECTION_END) + r"\n?", re.S
        )
        text = (
            pattern.sub(lambda _: block, text)
            if pattern.search(text)
            else (text.rstrip() + "\n\n" + block)
        )
    else:
        text = "# Benchmark results\n\nWritten by the benchmark suite (`benchmarks/`).\n\n" + block
    path.write_text(text)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def write(r: Results, out_dir: Path | None, results_md: Path | None) -> str:
    """Write the report, JSON and charts under ``out_dir`` (if given) and the RESULTS.md
    section (if given); return the full Markdown report."""
    made: list[str] = []
    stem = f"{r.meta['date'][:10]}-{r.meta['host']}"
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        made = charts(r, out_dir, stem)
    report = full_report(r, made)
    if out_dir is not None:
        (out_dir / f"{stem}.md").write_text(report)
        data = asdict(r)
        data.pop("markdown")
        (out_dir / f"{stem}.json").write_text(json.dumps(_jsonable(data), indent=1) + "\n")
    if results_md is not None:
        update_results_md(results_md, summary(r, made, f"{stem}.md"))
    return report
