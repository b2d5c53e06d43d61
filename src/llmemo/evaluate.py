"""``llmemo eval``: how well a configuration serves labelled prompt pairs.

A *pair file* is JSON Lines, one object per line::

    {"a": "cached prompt", "b": "new prompt", "same": true, "category": "paraphrase"}

``same: true`` means one answer serves both prompts (the cache should hit), ``false`` that
it must miss. Rows may carry ``a_messages``/``b_messages`` (lists of ``{"role",
"content"}``) instead of, or besides, ``a``/``b``: those are built into LangChain messages,
serialized with ``langchain_core.load.dumps`` and split with
:func:`llmemo.text.split_prompt`, exactly as a chat model's prompt reaches the cache. A
pair whose non-embedded contexts differ (system prompt, earlier turns) is never served:
the cache's partition keeps them apart.

For a configuration (embeddings, distance threshold, hit verifier) the report gives, per
file: recall (share of ``same`` pairs served) at false-hit rates of 0.5/1/2/5 % (share of
``different`` pairs served) with the threshold reaching it, recall and false hits at the
configured threshold, the largest threshold meeting ``--target-false-hits``, and a table
per ``category``. The plain-threshold baseline (same embeddings, no verifier) is shown
next to it. A PNG of the recall / false-hit curves is written when matplotlib is
installed.

Use it as ``python -m llmemo.evaluate PAIRS.jsonl ...`` or, wired into the main command,
``llmemo eval``: :func:`add_eval_parser` adds the subcommand, :func:`run_eval` runs it.
Exit codes follow ``llmemo``: 0 success (also when the chart is skipped for want of
matplotlib: the report is the result), 1 runtime error (a missing optional dependency of
the embeddings or verifier), 2 usage error (bad options; a pair file that is missing,
unreadable or malformed).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

from llmemo._argtypes import number_between, positive_int
from llmemo.errors import ConfigurationError, LlmemoError, MissingDependencyError
from llmemo.text import split_prompt
from llmemo.verify.base import Candidate, HitVerifier, Verdict

__all__ = [
    "DESCRIPTION",
    "FALSE_HIT_LEVELS",
    "ConfigResult",
    "FileResult",
    "Pair",
    "PairOutcome",
    "add_eval_parser",
    "evaluate_file",
    "format_report",
    "load_pairs",
    "main",
    "run_eval",
    "write_plot",
]

#: False-hit rates at which recall is reported.
FALSE_HIT_LEVELS = (0.005, 0.01, 0.02, 0.05)
#: Default distance threshold (cosine distance) of the configuration under test.
DEFAULT_THRESHOLD = 0.35
#: Default target false-hit rate for the threshold search.
DEFAULT_TARGET = 0.01

#: ``llmemo eval --help``'s description: what it measures and the pair file's format.
DESCRIPTION = """\
Measure how well a configuration (embeddings, distance threshold, hit verifier) serves
labelled prompt pairs: recall (share of 'same' pairs served) at false-hit rates of
0.5/1/2/5 % (share of 'different' pairs served), recall and false hits at --threshold,
the largest threshold meeting --target-false-hits, a table per category, and the
threshold-only baseline beside it; a PNG chart when matplotlib is installed.

A pair file is JSON Lines, one object per line:

  {"a": "cached prompt", "b": "new prompt", "same": true, "category": "paraphrase"}

'same': true means one answer serves both prompts (the cache should hit), false that it
must miss; 'category' is optional. Chat prompts: 'a_messages'/'b_messages', lists of
{"role": "system"|"user"|"assistant", "content": "..."}, instead of 'a'/'b'; a pair whose
earlier turns or system prompts differ is never served (as in the cache)."""

_EXIT_OK = 0
_EXIT_ERROR = 1
_EXIT_USAGE = 2
_VERIFY_CONCURRENCY = 16
_ROLE_CLASSES = {"user": "HumanMessage", "human": "HumanMessage", "assistant": "AIMessage"}
_ROLE_CLASSES.update({"ai": "AIMessage", "system": "SystemMessage"})


# ---------------------------------------------------------------------------------------
# Reading pairs
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Pair:
    """One labelled pair, as the cache would see it.

    Attributes:
        a: Embedded text of the cached prompt.
        b: Embedded text of the new prompt.
        same: Whether one answer serves both.
        category: The row's ``category`` (``""`` if none).
        servable: Whether the cache could serve ``a`` for ``b`` at all (same context).
        line: 1-based line number in the file.
    """

    a: str
    b: str
    same: bool
    category: str
    servable: bool
    line: int


def _prompt_of_messages(messages: Any, where: str) -> str:
    """LangChain's serialized prompt for a list of ``{"role", "content"}`` dicts."""
    from langchain_core.load import dumps
    from langchain_core.messages import (
        AIMessage,
        BaseMessage,
        ChatMessage,
        HumanMessage,
        SystemMessage,
    )

    classes: dict[str, type[BaseMessage]] = {
        "HumanMessage": HumanMessage,
        "AIMessage": AIMessage,
        "SystemMessage": SystemMessage,
    }
    if not isinstance(messages, list) or not messages:
        raise ConfigurationError(f"{where}: messages must be a non-empty list")
    built: list[BaseMessage] = []
    for message in messages:
        if not isinstance(message, dict) or "content" not in message:
            raise ConfigurationError(f"{where}: each message needs 'role' and 'content'")
        role = str(message.get("role", "user"))
        content = message["content"]
        name = _ROLE_CLASSES.get(role)
        if name is None:
            built.append(ChatMessage(role=role, content=content))
        else:
            built.append(classes[name](content=content))
    prompt: str = dumps(built)
    return prompt


def _pair_from_row(row: Mapping[str, Any], line: int, where: str, context: str = "exact") -> Pair:
    same = row.get("same")
    if not isinstance(same, bool):
        raise ConfigurationError(f"{where}: 'same' must be true or false")
    category = row.get("category") or ""
    if not isinstance(category, str):
        raise ConfigurationError(f"{where}: 'category' must be a string")
    if "a_messages" in row or "b_messages" in row:
        if "a_messages" not in row or "b_messages" not in row:
            raise ConfigurationError(f"{where}: give both 'a_messages' and 'b_messages'")
        parts_a = split_prompt(_prompt_of_messages(row["a_messages"], where), context)
        parts_b = split_prompt(_prompt_of_messages(row["b_messages"], where), context)
        # The cache embeds the whole prompt when its text is empty; such entries only
        # ever serve exact repeats.
        servable = parts_a.context == parts_b.context and bool(parts_a.text and parts_b.text)
        return Pair(parts_a.text, parts_b.text, same, category, servable, line)
    a, b = row.get("a"), row.get("b")
    if not isinstance(a, str) or not isinstance(b, str):
        raise ConfigurationError(f"{where}: 'a' and 'b' must be strings")
    parts_a, parts_b = split_prompt(a), split_prompt(b)
    servable = parts_a.context == parts_b.context
    return Pair(parts_a.text, parts_b.text, same, category, servable, line)


def load_pairs(path: str | Path, context: str = "exact") -> list[Pair]:
    """Read a pair file (JSON Lines; blank lines are skipped).

    ``context`` is the policy chat rows are split with (see
    :func:`llmemo.text.split_prompt`).

    Raises:
        ConfigurationError: a line is not a JSON object of the documented form (the
            message names the file and line).
        OSError: the file cannot be read.
    """
    pairs: list[Pair] = []
    with open(path, encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            where = f"{path}:{number}"
            try:
                row = json.loads(text)
            except ValueError as exc:
                raise ConfigurationError(f"{where}: not JSON ({exc})") from exc
            if not isinstance(row, dict):
                raise ConfigurationError(f"{where}: not a JSON object")
            pairs.append(_pair_from_row(row, number, where, context))
    if not pairs:
        raise ConfigurationError(f"{path}: no pairs")
    return pairs


# ---------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------


class _Progress:
    """One line on ``stream`` at most every ``every`` seconds, after ``after`` seconds."""

    def __init__(self, what: str, stream: TextIO, after: float = 1.0, every: float = 2.0):
        self.what = what
        self.stream = stream
        self.after = after
        self.every = every
        self.start = time.monotonic()
        self.last = self.start
        self.shown = False

    def update(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.start < self.after or (self.shown and now - self.last < self.every):
            return
        self.last = now
        self.shown = True
        print(f"{self.what}: {done}/{total} ...", file=self.stream, flush=True)

    def done(self, total: int) -> None:
        if self.shown:
            elapsed = time.monotonic() - self.start
            print(f"{self.what}: {total}/{total} ({elapsed:.1f} s)", file=self.stream)


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PairOutcome:
    """What a configuration does with one pair.

    Attributes:
        pair: The pair.
        distance: Cosine distance between the two embedded texts.
        accepted: The verifier's decision (``True`` without a verifier; ``False`` when
            the pair is not servable).
        reason: The verdict's reason (``""`` without a verifier).
    """

    pair: Pair
    distance: float
    accepted: bool
    reason: str

    def served(self, threshold: float) -> bool:
        """Whether the cache serves ``a`` for ``b`` at ``threshold``."""
        return self.pair.servable and self.accepted and self.distance <= threshold


@dataclass(slots=True)
class ConfigResult:
    """The outcomes of one configuration on one file, with derived metrics."""

    label: str
    threshold: float
    outcomes: list[PairOutcome]
    curve: list[tuple[float, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.curve = _curve(self.outcomes)

    @property
    def n_same(self) -> int:
        return sum(1 for o in self.outcomes if o.pair.same)

    @property
    def n_different(self) -> int:
        return sum(1 for o in self.outcomes if not o.pair.same)

    def rates(self, threshold: float) -> tuple[float, float | None]:
        """(recall, false-hit rate) at ``threshold``; the rate is None without negatives."""
        return _rates(self.outcomes, threshold)

    def recall_at(self, false_hits: float) -> tuple[float, float] | None:
        """(best recall, its largest threshold) with false-hit rate <= ``false_hits``."""
        if not self.n_different:
            return None
        best: tuple[float, float] | None = None
        for threshold, recall, rate in self.curve:
            if rate <= false_hits + 1e-12 and (best is None or recall >= best[0]):
                best = (recall, threshold)
        return best


def _rates(outcomes: Sequence[PairOutcome], threshold: float) -> tuple[float, float | None]:
    same = [o for o in outcomes if o.pair.same]
    different = [o for o in outcomes if not o.pair.same]
    recall = sum(o.served(threshold) for o in same) / len(same) if same else 0.0
    rate = sum(o.served(threshold) for o in different) / len(different) if different else None
    return recall, rate


def _curve(outcomes: Sequence[PairOutcome]) -> list[tuple[float, float, float]]:
    """(threshold, recall, false-hit rate) at every distance where something changes."""
    n_same = sum(1 for o in outcomes if o.pair.same)
    n_diff = len(outcomes) - n_same
    candidates = sorted(
        (o.distance, o.pair.same) for o in outcomes if o.pair.servable and o.accepted
    )
    points = [(0.0, 0.0, 0.0)]
    served_same = served_diff = 0
    for index, (distance, same) in enumerate(candidates):
        if same:
            served_same += 1
        else:
            served_diff += 1
        if index + 1 < len(candidates) and candidates[index + 1][0] == distance:
            continue
        points.append(
            (
                max(0.0, distance),
                served_same / n_same if n_same else 0.0,
                served_diff / n_diff if n_diff else 0.0,
            )
        )
    return points


@dataclass(slots=True)
class FileResult:
    """Every configuration's result on one pair file."""

    path: str
    pairs: list[Pair]
    configs: list[ConfigResult]
    target: float

    @property
    def not_servable(self) -> int:
        return sum(1 for p in self.pairs if not p.servable)


def _embed_all(
    embeddings: Any, texts: Sequence[str], batch_size: int, stream: TextIO
) -> dict[str, Any]:
    """Embed the distinct texts in batches; return text -> unit vector (numpy)."""
    import numpy as np

    unique = sorted(set(texts))
    progress = _Progress("embedding texts", stream)
    vectors: dict[str, Any] = {}
    for start in range(0, len(unique), batch_size):
        batch = unique[start : start + batch_size]
        result = embeddings.embed_documents(list(batch))
        if len(result) != len(batch):
            raise ConfigurationError(
                f"embeddings returned {len(result)} vectors for {len(batch)} texts"
            )
        for text, vector in zip(batch, result, strict=True):
            array = np.asarray(vector, dtype=np.float64)
            norm = float(np.linalg.norm(array))
            vectors[text] = array / norm if norm else array
        progress.update(min(start + batch_size, len(unique)), len(unique))
    progress.done(len(unique))
    return vectors


async def _verify_all(
    verifier: HitVerifier,
    pairs: Sequence[Pair],
    distances: Sequence[float],
    stream: TextIO,
) -> list[Verdict]:
    """Verify every servable pair (bounded concurrency); others get a rejecting verdict."""
    signatures: dict[str, Any] = {}

    def signature(text: str) -> Any:
        if text not in signatures:
            signatures[text] = verifier.signature(text)
        return signatures[text]

    progress = _Progress(f"verifying with {verifier.name}", stream)
    semaphore = asyncio.Semaphore(_VERIFY_CONCURRENCY)
    done = 0

    async def one(pair: Pair, distance: float) -> Verdict:
        nonlocal done
        if not pair.servable:
            return Verdict(False, verifier.name, "contexts differ")
        async with semaphore:
            candidate = Candidate("a", distance, signature(pair.a))
            try:
                verdict = await verifier.verify(pair.b, signature(pair.b), candidate)
            except Exception as exc:  # a raising verifier is a miss, as in the cache
                verdict = Verdict(False, verifier.name, f"verifier raised {exc!r}")
        done += 1
        progress.update(done, len(pairs))
        return verdict

    verdicts = await asyncio.gather(*(one(p, d) for p, d in zip(pairs, distances, strict=True)))
    progress.done(len(pairs))
    return list(verdicts)


def _has_chats(path: str | Path) -> bool:
    with open(path, encoding="utf-8") as handle:
        return any('"a_messages"' in line for line in handle)


def evaluate_file(
    path: str | Path,
    embeddings: Any,
    *,
    verifier: HitVerifier | None,
    threshold: float = DEFAULT_THRESHOLD,
    target: float = DEFAULT_TARGET,
    baseline: bool = True,
    batch_size: int = 64,
    stream: TextIO | None = None,
    contexts: Sequence[str] = ("exact",),
) -> FileResult:
    """Evaluate one pair file.

    Args:
        path: The JSON Lines pair file.
        embeddings: A LangChain ``Embeddings`` (``embed_documents`` is called in batches).
        verifier: The hit verifier under test, or ``None`` for the threshold alone.
        threshold: The configuration's distance threshold (cosine distance).
        target: The false-hit rate the threshold search aims at.
        baseline: Also evaluate the threshold alone (when a verifier is given).
        batch_size: Texts per embedding call.
        stream: Where progress lines go (stderr by default).
        contexts: The context policies to evaluate chat rows with (``"exact"``,
            ``"tolerant"``; see :func:`llmemo.text.split_prompt`), each reported as its
            own configuration. Files without chat rows are evaluated once. For files
            with chat rows the baseline also shows what a plain cache would do: the
            threshold alone on the final messages, with no partitioning by context.

    Raises:
        ConfigurationError: a malformed file, bad embeddings output or an unknown
            context policy.
    """
    import numpy as np

    from llmemo.text import CONTEXT_POLICIES

    unknown = [c for c in contexts if c not in CONTEXT_POLICIES]
    if unknown or not contexts:
        raise ConfigurationError(f"context policies must be among {CONTEXT_POLICIES}: {unknown}")
    stream = stream if stream is not None else sys.stderr
    chats = _has_chats(path)
    policies = list(dict.fromkeys(contexts)) if chats else ["exact"]
    by_policy = {c: load_pairs(path, context=c) for c in policies}
    texts = [t for pairs in by_policy.values() for p in pairs for t in (p.a, p.b)]
    vectors = _embed_all(embeddings, texts, batch_size, stream)

    def distance(p: Pair) -> float:
        return max(0.0, 1.0 - float(np.dot(vectors[p.a], vectors[p.b]))) if p.servable else 2.0

    first = by_policy[policies[0]]
    configs: list[ConfigResult] = []
    if chats and (verifier is None or baseline):
        # What a plain semantic cache serves: the final messages under the threshold,
        # whatever came before them.
        final = load_pairs(path) if policies[0] != "exact" else first
        loose = [replace(p, servable=True) for p in final]
        outcomes = [PairOutcome(p, distance(p), True, "") for p in loose]
        configs.append(ConfigResult("threshold only, no context", threshold, outcomes))
    for policy in policies:
        pairs = by_policy[policy]
        distances = [distance(p) for p in pairs]
        suffix = f" [{policy}]" if len(policies) > 1 else ""
        if verifier is None or baseline:
            plain = [
                PairOutcome(p, d, p.servable, "") for p, d in zip(pairs, distances, strict=True)
            ]
            configs.append(ConfigResult(f"threshold only{suffix}", threshold, plain))
        if verifier is not None:
            verdicts = asyncio.run(_verify_all(verifier, pairs, distances, stream))
            outcomes = [
                PairOutcome(p, d, v.accepted, v.reason)
                for p, d, v in zip(pairs, distances, verdicts, strict=True)
            ]
            label = f"threshold + {verifier.name}{suffix}"
            configs.append(ConfigResult(label, threshold, outcomes))
    return FileResult(str(path), first, configs, target)


# ---------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _level(level: float) -> str:
    return f"{100 * level:g}%"


def _target_threshold(config: ConfigResult, target: float) -> tuple[float, float, bool] | None:
    """The largest threshold whose false-hit rate is <= target, its recall, and whether
    every larger threshold meets the target too (no pair is served beyond it)."""
    if not config.n_different:
        return None
    best: tuple[float, float, bool] | None = None
    for index, (threshold, recall, rate) in enumerate(config.curve):
        if rate <= target + 1e-12:
            best = (threshold, recall, index == len(config.curve) - 1)
        else:
            break
    return best


def format_report(result: FileResult) -> str:
    """Render one file's result as text (the format printed by ``llmemo eval``)."""
    lines: list[str] = []
    n_same = sum(1 for p in result.pairs if p.same)
    n_diff = len(result.pairs) - n_same
    # Pairs whose contexts differ, per context policy (the label's "[policy]").
    differ: dict[str, int] = {}
    for config in result.configs:
        policy = config.label.rpartition("[")[2].rstrip("]") if "[" in config.label else ""
        differ.setdefault(policy, sum(not o.pair.servable for o in config.outcomes))
    if len(differ) > 1 or "" not in differ:
        counts = ", ".join(f"{n} under {policy}" for policy, n in differ.items() if policy)
        never = f"never served, contexts differ: {counts}"
    else:
        never = f"{result.not_servable} never served: contexts differ"
    lines.append(
        f"{result.path}: {len(result.pairs)} pairs ({n_same} same, {n_diff} different; {never})"
    )
    levels = "  ".join(f"{'@' + _level(x):>5}" for x in FALSE_HIT_LEVELS)
    width = max(len(c.label) for c in result.configs)
    threshold = result.configs[0].threshold
    lines.append(
        f"  {'configuration':<{width}}  recall at false hits  {levels}"
        f"  | at {threshold:.3f}: recall  false hits"
    )
    for config in result.configs:
        cells = []
        for level in FALSE_HIT_LEVELS:
            point = config.recall_at(level)
            cells.append(" n/a" if point is None else f"{100 * point[0]:5.1f}")
        recall, rate = config.rates(config.threshold)
        lines.append(
            f"  {config.label:<{width}}  {'':20}  "
            + "  ".join(f"{c:>5}" for c in cells)
            + f"  | {_pct(recall):>16}  {_pct(rate):>10}"
        )
    lines.append("  thresholds reaching those false-hit rates:")
    for config in result.configs:
        cells = []
        for level in FALSE_HIT_LEVELS:
            point = config.recall_at(level)
            cells.append("n/a" if point is None else f"{point[1]:.3f}")
        lines.append(f"  {config.label:<{width}}  {'':20}  " + "  ".join(f"{c:>5}" for c in cells))
    lines.append(f"  largest threshold with false hits <= {_level(result.target)}:")
    for config in result.configs:
        found = _target_threshold(config, result.target)
        if found is None:
            text = "n/a (no different pairs)"
        elif len(config.curve) == 1:
            text = "any (no pair is ever served)"
        else:
            more = " or more" if found[2] else ""
            text = f"{found[0]:.3f}{more} (recall {_pct(found[1])})"
        lines.append(f"  {config.label:<{width}}  {text}")
    categories = sorted({p.category for p in result.pairs if p.category})
    if categories:
        lines.append(
            f"  by category, served at {threshold:.3f} "
            "(recall for same pairs, false hits for different pairs):"
        )
        cat_width = max(len(c) for c in categories) + 12
        header = "".join(f"  {c.label:>{max(len(c.label), 8)}}" for c in result.configs)
        lines.append(f"    {'category':<{cat_width}}  {'pairs':>5}{header}")
        for category in categories:
            for same in (True, False):
                members = [
                    i
                    for i, p in enumerate(result.pairs)
                    if p.category == category and p.same is same
                ]
                if not members:
                    continue
                name = f"{category} ({'same' if same else 'different'})"
                row = ""
                for config in result.configs:
                    served = sum(config.outcomes[i].served(config.threshold) for i in members)
                    row += f"  {_pct(served / len(members)):>{max(len(config.label), 8)}}"
                lines.append(f"    {name:<{cat_width}}  {len(members):>5}{row}")
    return "\n".join(lines)


def write_plot(results: Sequence[FileResult], path: str | Path) -> None:
    """Draw recall against false-hit rate for every file and configuration (PNG).

    Raises:
        MissingDependencyError: matplotlib is not installed (the message says what to
            install).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise MissingDependencyError(
            f"the recall/false-hit chart needs matplotlib ({exc}): pip install matplotlib "
            "(in a checkout: pip install '.[bench]'), or pass --no-plot"
        ) from exc
    figure, (axes, by_threshold) = plt.subplots(1, 2, figsize=(13, 5.5))
    for result in results:
        name = Path(result.path).name
        for config in result.configs:
            style = "--" if config.label == "threshold only" else "-"
            label = f"{name}: {config.label}"
            thresholds = [t for t, _, _ in config.curve]
            recalls = [100 * r for _, r, _ in config.curve]
            (line,) = by_threshold.step(
                thresholds, recalls, where="post", linestyle=style, label=f"{label} (recall)"
            )
            if config.n_different:
                rates = [100 * f for _, _, f in config.curve]
                by_threshold.step(
                    thresholds,
                    rates,
                    where="post",
                    linestyle=":",
                    color=line.get_color(),
                    label=f"{label} (false hits)",
                )
                axes.step(rates, recalls, where="post", linestyle=style, linewidth=1.8, label=label)
                recall, rate = config.rates(config.threshold)
                if rate is not None:
                    axes.plot([100 * rate], [100 * recall], "o", color=line.get_color())
    for level in FALSE_HIT_LEVELS:
        axes.axvline(100 * level, color="0.85", linewidth=0.8, zorder=0)
    axes.set_xscale("symlog", linthresh=1.0)
    axes.set_xlim(-0.2, 100)
    axes.set_ylim(0, 100)
    axes.set_xlabel("false hits: share of different pairs served (%)")
    axes.set_ylabel("recall: share of same pairs served (%)")
    axes.set_title("recall vs false hits (dot: configured threshold)")
    axes.legend(fontsize="x-small", loc="lower right")
    axes.grid(True, alpha=0.3)
    if results and results[0].configs:
        by_threshold.axvline(results[0].configs[0].threshold, color="0.6", linewidth=0.8)
    by_threshold.set_xlim(0, 0.6)
    by_threshold.set_ylim(0, 100)
    by_threshold.set_xlabel("distance threshold (cosine distance)")
    by_threshold.set_ylabel("% of pairs served")
    by_threshold.set_title("served by threshold: recall (solid/dashed), false hits (dotted)")
    by_threshold.legend(fontsize="x-small", loc="upper left")
    by_threshold.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


# ---------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------


def _import_object(spec: str) -> Any:
    """``module:attribute`` -> the object (called if it is a class or a factory)."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ConfigurationError(f"expected module:attribute, got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigurationError(f"cannot import {module_name!r}: {exc}") from exc
    try:
        target = getattr(module, attribute)
    except AttributeError as exc:
        raise ConfigurationError(f"{module_name!r} has no attribute {attribute!r}") from exc
    return target() if callable(target) else target


def _make_embeddings(spec: str) -> Any:
    if spec == "local":
        from llmemo.local import LocalEmbeddings

        return LocalEmbeddings()
    embeddings = _import_object(spec)
    if not hasattr(embeddings, "embed_documents"):
        raise ConfigurationError(f"{spec!r} is not a LangChain Embeddings (no embed_documents)")
    return embeddings


def _make_verifier(args: argparse.Namespace) -> HitVerifier | None:
    spec: str = args.verifier
    if spec == "none":
        return None
    if spec == "rules":
        from llmemo.verify.rules import RulesVerifier

        options: dict[str, Any] = {"store_text": not args.no_store_text}
        if args.reworded_max_distance is not None:
            value = args.reworded_max_distance
            options["reworded_max_distance"] = None if value < 0 else value
        return RulesVerifier(**options)
    if spec == "learned":
        from llmemo.verify.learned import LearnedVerifier
        from llmemo.verify.rules import RulesVerifier

        return LearnedVerifier(rules=RulesVerifier(store_text=not args.no_store_text))
    verifier = _import_object(spec)
    if not isinstance(verifier, HitVerifier):
        raise ConfigurationError(f"{spec!r} is not a HitVerifier")
    return verifier


_rate = number_between(0, 1, "a rate")
_distance = number_between(0, 2, "a cosine distance")
_batch = positive_int


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``llmemo eval`` to ``parser``."""
    parser.add_argument("pairs", nargs="+", metavar="PAIRS.jsonl", help="labelled pair files")
    parser.add_argument(
        "--embeddings",
        default="local",
        metavar="SPEC",
        help="'local' (all-MiniLM-L6-v2, the 'local' extra) or module:attribute of a "
        "LangChain Embeddings instance, class or factory (default %(default)s)",
    )
    parser.add_argument(
        "--verifier",
        default="rules",
        metavar="SPEC",
        help="'rules' (the default RulesVerifier), 'learned' (LearnedVerifier: the rules' "
        "hard checks, a trained model for the wording), 'none' (threshold only) or "
        "module:attribute of a HitVerifier, class or factory (default %(default)s)",
    )
    parser.add_argument(
        "--threshold",
        type=_distance,
        default=DEFAULT_THRESHOLD,
        metavar="D",
        help="the configuration's distance threshold, cosine distance (default %(default)s)",
    )
    parser.add_argument(
        "--target-false-hits",
        type=_rate,
        default=DEFAULT_TARGET,
        metavar="RATE",
        help="find the largest threshold serving at most this share of different pairs "
        "(default %(default)s)",
    )
    parser.add_argument(
        "--reworded-max-distance",
        type=float,
        default=None,
        metavar="D",
        help="rules verifier: largest distance for reworded pairs (negative: no limit)",
    )
    parser.add_argument(
        "--no-store-text",
        action="store_true",
        help="rules verifier: signatures of digests instead of words",
    )
    parser.add_argument(
        "--context",
        choices=("exact", "tolerant", "both"),
        default="both",
        help="context policy for chat rows (a_messages/b_messages): 'exact' (everything "
        "but the final user message must match), 'tolerant' (system prompt and tools must "
        "match, the conversation is compared by meaning) or 'both' (default %(default)s)",
    )
    parser.add_argument(
        "--no-baseline", action="store_true", help="do not report the threshold alone"
    )
    parser.add_argument(
        "--plot",
        default="llmemo-eval.png",
        metavar="PNG",
        help="where to write the recall/false-hit chart (default %(default)s)",
    )
    parser.add_argument("--no-plot", action="store_true", help="write no chart")
    parser.add_argument(
        "--batch-size",
        type=_batch,
        default=64,
        metavar="N",
        help="texts per embedding call (default %(default)s)",
    )


def add_eval_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``eval`` subcommand to an ``argparse`` subparsers object.

    The subcommand's handler (``args.handler``) is :func:`run_eval`.
    """
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "eval",
        help="measure recall and false hits of a configuration on labelled prompt pairs",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    parser.set_defaults(handler=run_eval)
    return parser


def run_eval(
    args: argparse.Namespace,
    *,
    embeddings: Any = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """Run ``llmemo eval`` with parsed ``args``; return the exit code.

    Args:
        args: Parsed by a parser set up with :func:`configure_parser`.
        embeddings: Use this LangChain ``Embeddings`` instead of ``args.embeddings``.
        out: Where the report goes (stdout).
        err: Where progress and notes go (stderr).

    Without matplotlib the chart is skipped with a note on ``err`` (exit code 0).

    Raises:
        ConfigurationError: bad options, or a pair file that is missing, unreadable or
            malformed (usage error).
        MissingDependencyError: an optional dependency of the embeddings or verifier is
            missing (the message names it).
    """
    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    verifier = _make_verifier(args)
    if embeddings is None:
        embeddings = _make_embeddings(args.embeddings)
    results: list[FileResult] = []
    name = type(embeddings).__name__
    described = "threshold only" if verifier is None else repr(verifier)
    print(
        f"llmemo eval: embeddings {name}, threshold {args.threshold:.3f}, verifier {described}",
        file=out,
    )
    for path in args.pairs:
        try:
            result = evaluate_file(
                path,
                embeddings,
                verifier=verifier,
                threshold=args.threshold,
                target=args.target_false_hits,
                baseline=not args.no_baseline,
                batch_size=args.batch_size,
                stream=err,
                contexts=("exact", "tolerant") if args.context == "both" else (args.context,),
            )
        except OSError as exc:
            # Bad input, as a malformed file is: the same exit code for both.
            raise ConfigurationError(f"cannot read {path}: {exc.strerror or exc}") from exc
        results.append(result)
        print("", file=out)
        print(format_report(result), file=out, flush=True)
    if not args.no_plot:
        try:
            write_plot(results, args.plot)
        except MissingDependencyError as exc:
            # The report above is the result; the chart is an extra.
            print(f"llmemo eval: chart skipped: {exc}", file=err, flush=True)
        else:
            print(f"\nchart: {args.plot}", file=out)
    return _EXIT_OK


def main(
    argv: Sequence[str] | None = None,
    *,
    embeddings: Any = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """``python -m llmemo.evaluate``: parse ``argv``, run, map errors to exit codes."""
    parser = argparse.ArgumentParser(
        prog="python -m llmemo.evaluate",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    configure_parser(parser)
    err = err if err is not None else sys.stderr
    try:
        args = parser.parse_args(None if argv is None else list(argv))
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else _EXIT_USAGE
    try:
        return run_eval(args, embeddings=embeddings, out=out, err=err)
    except ConfigurationError as exc:
        print(f"llmemo eval: error: {exc}", file=err)
        return _EXIT_USAGE
    except LlmemoError as exc:
        print(f"llmemo eval: error: {exc}", file=err)
        return _EXIT_ERROR
    except KeyboardInterrupt:
        print("llmemo eval: interrupted", file=err)
        return 130


if __name__ == "__main__":
    sys.exit(main())
