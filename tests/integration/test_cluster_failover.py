"""A primary dies while LangChain models run against the cluster: llmemo fails open.

A fresh 3 primaries + 3 replicas cluster (``cluster-node-timeout`` 1000 ms,
``cluster-require-full-coverage no``); one asyncio task calls LangChain chat models in a
loop through three caches (exact ``RedisCache``, RediSearch and vector-set
``RedisSemanticCache``), every prompt already cached, spread over all three shards. A
primary is killed by pid (SIGKILL) mid-loop. Expected: no exception ever escapes a
LangChain call; misses only in the failover window, and every entry (the killed shard's
too: its replica has them) hits again within about 5 s.

Each cache runs twice in the same loop: with the default failure policy, and with a
circuit breaker that cannot open in the window. Circuit breakers are per cluster node, so
with either policy the live shards' entries hit throughout: the dead shard's failures open
only its own circuit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from redis.crc import key_slot

from llmemo import keys
from llmemo.langchain import RedisCache, RedisSemanticCache
from llmemo.policy import FailurePolicy
from llmemo.text import split_prompt

from fakes import AsyncConceptEmbeddings
from redis_server import RedisClusterServer

pytestmark = [pytest.mark.redis, pytest.mark.cluster, pytest.mark.slow]

#: Seconds of looping before the kill, and after it.
BEFORE, AFTER = 1.0, 7.0
#: The issue's bound for full service after a primary dies (failover ~2x node timeout).
RECOVERY_BOUND = 5.0
#: Fail-open with a breaker that does not open within the test (threshold never reached).
NO_BREAKER = FailurePolicy(breaker_threshold=1_000_000)
QUESTIONS = [
    "What is the capital of France?",
    "How do I bake bread?",
    "What is the largest planet?",
    "What is the weather forecast?",
]


class Recording(RedisCache):
    """A ``RedisCache`` that records whether each lookup hit (the LangChain path is
    unchanged: the model still calls ``alookup``/``aupdate``)."""

    outcomes: list[tuple[float, str, bool]]

    async def alookup(self, prompt: str, llm_string: str) -> Any:
        found = await super().alookup(prompt, llm_string)
        self.outcomes.append((time.monotonic(), self._slot_key(prompt, llm_string), bool(found)))
        return found

    def _slot_key(self, prompt: str, llm_string: str) -> str:
        partition = keys.partition_id(self.prefix, llm_string)
        return keys.exact_key(self.prefix, partition, prompt)


class RecordingSemantic(RedisSemanticCache):
    outcomes: list[tuple[float, str, bool]]

    async def alookup(self, prompt: str, llm_string: str) -> Any:
        found = await super().alookup(prompt, llm_string)
        root = self.prefix if self.name == self.prefix else f"{self.prefix}:{self.name}"
        partition = keys.partition_id(root, llm_string, split_prompt(prompt).context)
        self.outcomes.append((time.monotonic(), f"{{{partition}}}", bool(found)))
        return found


@dataclass
class Timeline:
    kill_at: float = 0.0
    errors: list[BaseException] = field(default_factory=list)
    calls: int = 0


def _slot_range(cluster: RedisClusterServer, port: int) -> range:
    index = [node.port for node in cluster.masters].index(port)
    per_node = 16384 // len(cluster.masters)
    last = 16383 if index == len(cluster.masters) - 1 else (index + 1) * per_node - 1
    return range(index * per_node, last + 1)


def _caches(url: str, prefix: str, policy: FailurePolicy | None) -> list[Any]:
    options: dict[str, Any] = {"cluster": True}
    if policy is not None:
        options["policy"] = policy
    caches: list[Any] = [
        Recording(url, prefix=f"{prefix}-x", **options),
        RecordingSemantic(
            AsyncConceptEmbeddings(), url, prefix=prefix, name="fts",
            vector_backend="redisearch", **options,
        ),
        RecordingSemantic(
            AsyncConceptEmbeddings(), url, prefix=prefix, name="vs",
            vector_backend="vectorset", **options,
        ),
    ]  # fmt: skip
    for cache in caches:
        cache.outcomes = []
    return caches


async def test_a_primary_dies_and_langchain_calls_fail_open(
    failover_cluster: RedisClusterServer, unique_prefix: str
) -> None:
    url = failover_cluster.url
    default = _caches(url, f"{unique_prefix}-d", None)
    unbroken = _caches(url, f"{unique_prefix}-u", NO_BREAKER)
    # 8 model configurations x 4 questions per cache: partitions (semantic) and keys
    # (exact) on all three shards. Calls alternate between the two policies.
    models = [
        FakeListChatModel(responses=[f"{i}-{j}"], cache=cache)
        for i in range(8)
        for j, cache in enumerate(default + unbroken)
    ]
    for model in models:  # warm: every (model, question) cached; misses write
        for question in QUESTIONS:
            await model.ainvoke(question)
    await asyncio.sleep(0.3)  # let the replicas catch up with the last writes
    for cache in default + unbroken:
        cache.outcomes.clear()

    victim = failover_cluster.masters[1]
    victim_slots = _slot_range(failover_cluster, victim.port or 0)
    timeline = Timeline()

    async def loop(until: float) -> None:
        while time.monotonic() < until:
            for question in QUESTIONS:
                for model in models:
                    try:
                        await model.ainvoke(question)
                    except BaseException as exc:  # anything escaping LangChain is a failure
                        timeline.errors.append(exc)
                    timeline.calls += 1

    start = time.monotonic()
    task = asyncio.create_task(loop(start + BEFORE + AFTER))
    await asyncio.sleep(BEFORE)
    timeline.kill_at = time.monotonic()
    await asyncio.to_thread(victim.kill)  # SIGKILL by pid
    await task

    assert timeline.errors == []
    assert timeline.calls > 3 * len(models) * len(QUESTIONS)

    def split(caches: list[Any]) -> tuple[list[tuple[float, bool]], list[tuple[float, bool]]]:
        outcomes = [o for cache in caches for o in cache.outcomes]
        victim_side = [
            (t - timeline.kill_at, hit)
            for t, key, hit in outcomes
            if key_slot(key.encode()) in victim_slots
        ]
        others = [
            (t - timeline.kill_at, hit)
            for t, key, hit in outcomes
            if key_slot(key.encode()) not in victim_slots
        ]
        assert victim_side and others
        return victim_side, others

    for caches in (default, unbroken):
        on_victim, elsewhere = split(caches)
        # Before the kill everything hits; afterwards, misses only in the failover window.
        assert all(hit for t, hit in on_victim + elsewhere if t < 0)
        misses = [t for t, hit in on_victim + elsewhere if not hit]
        assert misses, "no lookup reached the killed shard during the failover window"
        assert max(misses) < RECOVERY_BOUND
        # Full service afterwards, the killed shard's entries included (the replica's).
        assert any(hit for t, hit in on_victim if t > max(misses))
        assert any(hit for t, hit in elsewhere if t > max(misses))
    # Breakers are per node: the live shards' entries hit throughout, with either policy.
    for caches in (default, unbroken):
        on_victim, elsewhere = split(caches)
        assert [t for t, hit in elsewhere if not hit] == []
        assert [t for t, hit in on_victim if not hit]
    for cache in default + unbroken:
        await cache.aclear()
