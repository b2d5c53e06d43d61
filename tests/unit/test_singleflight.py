"""SingleFlight: its memory of landed flights (the late-caller fallback) and its bounds."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from langchain_core.outputs import Generation

from llmemo.adapters import _runwatch, _singleflight
from llmemo.adapters._singleflight import RECENT, SingleFlight
from llmemo.langchain import InMemoryCache


def land(flights: SingleFlight, key: str, payload: bytes | None, *, landed: bool = True) -> None:
    assert flights.join(key) is None  # this thread leads
    flights.complete(key, payload, landed=landed)


def test_a_landed_flight_keeps_its_shared_value_for_late_callers() -> None:
    flights = SingleFlight(timeout=1.0)
    land(flights, "k", b"value")
    assert flights.join("k") is RECENT
    assert flights.recent_value("k") == b"value"
    land(flights, "none", None)  # it had no waiters: nothing was encoded
    assert flights.join("none") is RECENT
    assert flights.recent_value("none") is None
    assert flights.recent_value("never") is None


def test_a_flight_whose_write_did_not_land_is_not_remembered() -> None:
    flights = SingleFlight(timeout=1.0)
    land(flights, "k", b"value", landed=False)  # bypassed or dropped write
    assert flights.recent_value("k") is None
    assert flights.join("k") is None  # the next caller leads


def test_the_memory_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_singleflight, "RECENT_SECONDS", 0.05)
    flights = SingleFlight(timeout=1.0)
    land(flights, "k", b"value")
    time.sleep(0.06)
    assert flights.recent_value("k") is None
    assert flights.join("k") is None


def test_values_beyond_the_byte_budget_are_dropped_oldest_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(_singleflight, "_MAX_RECENT_BYTES", 10)
    flights = SingleFlight(timeout=1.0)
    land(flights, "a", b"aaaaaa")
    land(flights, "b", b"bbbbbb")
    # "a" lost its value but still tells late callers to read the cache again.
    assert (flights.recent_value("a"), flights.recent_value("b")) == (None, b"bbbbbb")
    assert flights.join("a") is RECENT
    land(flights, "big", b"x" * 11)  # alone over the budget: a key only, "b" stays
    assert flights.recent_value("big") is None
    assert flights.join("big") is RECENT
    assert flights.recent_value("b") == b"bbbbbb"
    # Only the values kept are counted: 6 + 4 bytes fit.
    land(flights, "d", b"dddd")
    assert [flights.recent_value(k) for k in ("b", "d")] == [b"bbbbbb", b"dddd"]


def test_the_number_of_remembered_keys_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_singleflight, "_MAX_RECENT", 2)
    flights = SingleFlight(timeout=1.0)
    for key in ("a", "b", "c"):
        land(flights, key, key.encode())
    assert flights.join("a") is None  # forgotten: the oldest
    assert [flights.recent_value(k) for k in ("b", "c")] == [b"b", b"c"]


def test_the_memory_never_outlives_the_entry_ttl() -> None:
    flights = SingleFlight(timeout=1.0)
    assert flights.join("k") is None
    flights.complete("k", b"value", ttl=0.05)
    assert flights.recent_value("k") == b"value"
    time.sleep(0.06)  # the entry expired in the cache: its value must not be served
    assert flights.recent_value("k") is None
    assert flights.join("k") is None


def test_forget_recent_forgets_every_landed_flight() -> None:
    flights = SingleFlight(timeout=1.0)
    land(flights, "k", b"value")
    flights.forget_recent()
    assert flights.recent_value("k") is None
    assert flights.join("k") is None


def callbacks_of(task: asyncio.Task[Any]) -> int:
    return len(getattr(task, "_callbacks", None) or ())


async def test_many_misses_in_one_task_add_one_done_callback_and_no_state() -> None:
    cache = InMemoryCache()
    task = asyncio.current_task()
    assert task is not None
    before = callbacks_of(task)
    for i in range(20_000):  # each one leads a flight of its own, then lands it
        assert await cache.alookup(f"prompt {i}", "llm") is None
        await cache.aupdate(f"prompt {i}", "llm", [Generation(text="x")])
    assert callbacks_of(task) <= before + 1  # was one callback per miss: 20,000
    flights = cache._flights
    assert flights is not None
    assert (len(flights), len(flights._led), len(flights._hooked)) == (0, 0, 1)
    holder = _runwatch._unbound.get()
    assert holder is not None and len(holder.items) <= 16


@pytest.mark.parametrize("face", ["async", "sync"])
async def test_many_bare_lookups_in_one_task_or_thread_keep_few_flights(
    face: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_singleflight, "UNCONFIRMED_GRACE", 0.0)
    cache = InMemoryCache()

    def lookups() -> None:
        for i in range(5_000):  # looked up, never updated
            assert cache.lookup(f"prompt {i}", "llm") is None

    if face == "sync":
        thread = threading.Thread(target=lookups)
        thread.start()
        thread.join()
    else:
        for i in range(5_000):
            assert await cache.alookup(f"prompt {i}", "llm") is None
    flights = cache._flights
    assert flights is not None
    assert len(flights) < 128  # pruned as they accumulate: bounded, not 5,000
