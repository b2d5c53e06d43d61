"""``llmemo eval`` on a small pair file written here, with embeddings of known distances.

Every number the report prints is worked out by hand in the comments below: the fake
embeddings put the two texts of each pair at exactly the listed cosine distance.
"""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings

from llmemo.evaluate import load_pairs, main

# (a, b, same, category, distance) — texts written for this test.
ROWS: list[tuple[Any, Any, bool, str, float]] = [
    (
        "How do I cancel my subscription?",
        "How can I cancel my subscription?",
        True,
        "paraphrase",
        0.05,
    ),
    ("Where is my parcel?", "Where is my package?", True, "paraphrase", 0.20),
    ("Can I pay by card?", "Is it possible to pay by card?", True, "paraphrase", 0.30),
    ("Do you open early on Sundays?", "Do you open early on a Sunday?", True, "paraphrase", 0.45),
    ("Is the museum free on Monday?", "Is the museum free on Tuesday?", False, "number", 0.02),
    ("How do I enable backups?", "How do I disable backups?", False, "negation", 0.04),
    (
        "Book a flight from Oslo to Rome",
        "Book a flight from Rome to Oslo",
        False,
        "direction",
        0.01,
    ),
    (
        "What does the basic plan include?",
        "What does the premium plan include?",
        False,
        "scope",
        0.25,
    ),
    # Same final question, different system prompt: never served (context differs).
    (
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        [
            {"role": "system", "content": "You are chatty."},
            {"role": "user", "content": "What is 2+2?"},
        ],
        True,
        "chat",
        0.0,
    ),
    # Same history, different final question: served by distance, refused by the rules.
    (
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Is the shop open on Sunday?"},
        ],
        [
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Is the shop open on Saturday?"},
        ],
        True is False,
        "chat",
        0.03,
    ),
]


def _last_user(messages: Any) -> str:
    return messages[-1]["content"] if isinstance(messages, list) else messages


class KnownDistances(Embeddings):
    """Pair k: a -> axis 2k, b -> at exactly the row's cosine distance from a."""

    def __init__(self) -> None:
        self.vectors: dict[str, list[float]] = {}
        dimension = 2 * len(ROWS)
        for k, (a, b, _, _, distance) in enumerate(ROWS):
            first = [0.0] * dimension
            first[2 * k] = 1.0
            second = [0.0] * dimension
            second[2 * k] = 1.0 - distance
            second[2 * k + 1] = math.sqrt(1.0 - (1.0 - distance) ** 2)
            self.vectors.setdefault(_last_user(a), first)
            self.vectors.setdefault(_last_user(b), second if distance else first)
        self.batches: list[int] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.batches.append(len(texts))
        return [self.vectors[t] for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.vectors[text]


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    path = tmp_path / "pairs.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for a, b, same, category, _ in ROWS:
            if isinstance(a, list):
                row = {"a_messages": a, "b_messages": b, "same": same, "category": category}
            else:
                row = {"a": a, "b": b, "same": same, "category": category}
            handle.write(json.dumps(row) + "\n")
        handle.write("\n")  # blank lines are skipped
    return path


def run(args: list[str], embeddings: Embeddings | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(args, embeddings=embeddings or KnownDistances(), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_load_pairs_builds_chat_prompts_like_langchain(pairs_file: Path) -> None:
    pairs = load_pairs(pairs_file)
    assert len(pairs) == 10
    assert pairs[8].a == pairs[8].b == "What is 2+2?"
    assert not pairs[8].servable  # the system prompts differ
    assert pairs[9].servable and pairs[9].b == "Is the shop open on Saturday?"
    assert all(p.servable for p in pairs[:8])


def test_report_numbers(pairs_file: Path) -> None:
    code, out, _ = run([str(pairs_file), "--no-plot", "--batch-size", "4", "--context", "exact"])
    assert code == 0
    lines = [line.rstrip() for line in out.splitlines()]
    # 5 same pairs (4 paraphrases + the chat with another system prompt), 5 different.
    assert f"{pairs_file}: 10 pairs (5 same, 5 different; 1 never served: contexts differ)" in lines
    # Threshold only: every different pair is closer (0.01-0.04, 0.25) than most same
    # pairs, so any false-hit rate below 20 % (one of five) leaves threshold 0 and recall
    # 0. At 0.35: same pairs at 0.05, 0.20, 0.30 are served (3 of 5 = 60 %), and all
    # five different pairs (100 %).
    # With the rules: every different pair is refused and the four paraphrases are
    # accepted, so recall reaches 80 % (4 of 5) at threshold 0.450 with no false hit;
    # at 0.35 it is 60 % (0.05, 0.20, 0.30).
    # "Threshold only, no context" is a plain cache: final messages only, whatever the
    # system prompt, so it also serves the chat pair whose system prompts differ (at
    # distance 0: recall 20 % at threshold 0).
    expected = [
        "  configuration               recall at false hits  @0.5%    @1%    @2%    @5%"
        "  | at 0.350: recall  false hits",
        "  threshold only, no context                         20.0   20.0   20.0   20.0  |"
        "            80.0%      100.0%",
        "  threshold only                                      0.0    0.0    0.0    0.0  |"
        "            60.0%      100.0%",
        "  threshold + rules                                  80.0   80.0   80.0   80.0  |"
        "            60.0%        0.0%",
        "  thresholds reaching those false-hit rates:",
        "  threshold only, no context                        0.000  0.000  0.000  0.000",
        "  threshold only                                    0.000  0.000  0.000  0.000",
        "  threshold + rules                                 0.450  0.450  0.450  0.450",
        "  largest threshold with false hits <= 1%:",
        "  threshold only, no context  0.000 (recall 20.0%)",
        "  threshold only              0.000 (recall 0.0%)",
        "  threshold + rules           0.450 or more (recall 80.0%)",
        "  by category, served at 0.350 (recall for same pairs, false hits for different pairs):",
        "    category                pairs  threshold only, no context  threshold only"
        "  threshold + rules",
        "    chat (same)                 1                      100.0%            0.0%"
        "               0.0%",
        "    chat (different)            1                      100.0%          100.0%"
        "               0.0%",
    ]
    start = lines.index(expected[0])
    assert lines[start : start + len(expected)] == expected


def test_threshold_and_target_options(pairs_file: Path) -> None:
    code, out, _ = run(
        [
            str(pairs_file),
            "--no-plot",
            "--verifier",
            "none",
            "--threshold",
            "0.2",
            "--target-false-hits",
            "0.5",
            "--context",
            "exact",
        ]
    )
    assert code == 0
    assert "threshold + rules" not in out
    # At 0.20: same pairs at 0.05 and 0.20 (2 of 5 = 40 %); different at 0.01-0.04 (80 %).
    assert (
        "  threshold only                                      0.0    0.0    0.0    0.0  |"
        "            40.0%       80.0%" in out
    )
    # False hits <= 50 %: at most two of five different pairs, i.e. up to 0.02 (recall 0).
    assert "  threshold only              0.020 (recall 0.0%)" in out


def test_embeddings_are_batched_once_per_distinct_text(pairs_file: Path) -> None:
    embeddings = KnownDistances()
    code, _, _ = run([str(pairs_file), "--no-plot", "--batch-size", "4"], embeddings)
    assert code == 0
    # 19 distinct texts ("What is 2+2?" appears twice): batches of 4.
    assert embeddings.batches == [4, 4, 4, 4, 3]


def test_plot_is_written(pairs_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / "curve.png"
    code, out, _ = run([str(pairs_file), "--plot", str(chart)])
    assert code == 0
    assert f"chart: {chart}" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_matplotlib_says_what_to_install(
    pairs_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    code, out, err = run([str(pairs_file), "--plot", str(tmp_path / "c.png")])
    assert code == 0  # the report is the result; the chart is skipped with a note
    assert "recall at false hits" in out
    assert "chart skipped" in err
    assert "pip install matplotlib" in err
    assert "chart:" not in out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("not json\n", ":1: not JSON"),
        ('{"a": "x", "b": "y"}\n', "'same' must be true or false"),
        ('{"a": "x", "same": true}\n', "'a' and 'b' must be strings"),
        ('{"a_messages": [], "b_messages": [], "same": true}\n', "non-empty list"),
        ("\n", "no pairs"),
    ],
)
def test_malformed_files_are_usage_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    code, _, err = run([str(path), "--no-plot"])
    assert code == 2
    assert message in err


def test_missing_file_is_a_usage_error_as_a_malformed_one_is(tmp_path: Path) -> None:
    code, _, err = run([str(tmp_path / "missing.jsonl"), "--no-plot"])
    assert code == 2
    assert "cannot read" in err


def test_bad_option_is_a_usage_error(pairs_file: Path) -> None:
    code, _, _ = run([str(pairs_file), "--target-false-hits", "2"])
    assert code == 2


def test_each_context_policy_is_reported(pairs_file: Path) -> None:
    code, out, _ = run([str(pairs_file), "--no-plot"])  # --context both is the default
    assert code == 0
    assert "never served, contexts differ: 1 under exact, 1 under tolerant)" in out
    for label in (
        "threshold only, no context",
        "threshold only [exact]",
        "threshold + rules [exact]",
        "threshold only [tolerant]",
        "threshold + rules [tolerant]",
    ):
        assert f"\n  {label}  " in out, label
    code, out, _ = run([str(pairs_file), "--no-plot", "--context", "tolerant"])
    assert code == 0
    assert "[tolerant]" not in out
    assert "threshold + rules   " in out
