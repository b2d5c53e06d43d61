"""SingleFlight's memory of landed flights (the adapters' late-caller fallback)."""

from __future__ import annotations

import time

import pytest

from llmemo.adapters import _singleflight
from llmemo.adapters._singleflight import RECENT, SingleFlight


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
