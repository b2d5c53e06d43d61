"""In-process single-flight for LangChain's lookup → model call → update sequence.

When many callers miss on the same ``(prompt, llm_string)`` at once, only the first (the
*leader*) should call the model; the others wait for the leader's ``update`` and are
served its value. LangChain calls ``lookup``, then the model, then ``update``, all in
the caller's task (async) or thread (sync), so the leader is identified by that task or
thread.

A flight ends, and its waiters are released, when:

* the leader's ``update`` for that key arrives: waiters get the value (each decodes its
  own copy, so no two callers share mutable objects);
* the leader's task finishes without it (the model call failed or was cancelled), or the
  leader starts another lookup (a sync leader whose model call raised and moved on):
  waiters get nothing; the adapter lets them join again, so one of them leads the retry
  (a few times at most, then they miss and call the model themselves);
* a waiter has waited ``timeout`` seconds: it misses.

A caller whose lookup missed just before the leader's update landed would otherwise find
no flight and lead a second model call; so a completed key is remembered for
:data:`RECENT_SECONDS`, and such a caller is told to look the cache up again instead.
The value shared with the flight's waiters (if it had any) is kept for as long, up to
:data:`_MAX_RECENT_BYTES` in all: when that second lookup cannot read the cache either
(a burst that ran over the time budget and opened the circuit breaker), the caller is
served the value instead of calling the model again.

Thread-safe: sync waiters (threads) and async waiters (on any event loop) share flights.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RECENT", "RECENT_SECONDS", "SingleFlight"]

#: Returned by :meth:`SingleFlight.join` when the key's flight has just landed.
RECENT: Any = object()
#: Seconds a landed flight's key is remembered.
RECENT_SECONDS = 5.0
_MAX_RECENT = 4096
# Most bytes of shared values kept for late callers (beyond it, the oldest are dropped
# and their keys only tell callers to look the cache up again).
_MAX_RECENT_BYTES = 16 * 1024 * 1024


@dataclass
class _Flight:
    owner: Any
    done: threading.Event = field(default_factory=threading.Event)
    payload: bytes | None = None
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[bytes | None]]] = field(
        default_factory=list
    )
    waiting: int = 0


def _current_owner() -> Any:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else ("thread", threading.get_ident())


class SingleFlight:
    """A table of flights, keyed by a string the caller derives from prompt and model.

    Args:
        timeout: Most seconds a waiter waits for the leader.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._flights: dict[str, _Flight] = {}
        self._led: dict[Any, str] = {}  # owner -> key of the flight it leads
        # Landed key -> (when, the value shared with its waiters or None), oldest first.
        self._recent: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._recent_bytes = 0  # of the values in _recent
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Flights in progress."""
        return len(self._flights)

    def join(self, key: str) -> Any:
        """Join the flight of ``key``: ``None`` if the caller leads it (it must call the
        model and ``complete``), :data:`RECENT` if that key's value has just been stored
        (look it up again), else the flight to wait for."""
        owner = _current_owner()
        with self._lock:
            landed = self._recent.get(key)
            if landed is not None:
                if time.monotonic() - landed[0] < RECENT_SECONDS:
                    return RECENT
                self._forget(key)
            previous = self._led.get(owner)
            if previous is not None and previous != key:
                self._finish(previous, None, landed=False)  # its model call ended, no update
            flight = self._flights.get(key)
            if flight is not None and flight.owner != owner:
                flight.waiting += 1
                return flight
            if flight is None:
                self._flights[key] = _Flight(owner)
                self._led[owner] = key
                if isinstance(owner, asyncio.Task):
                    owner.add_done_callback(lambda _task: self.abandon(key, owner))
            return None

    def complete(self, key: str, payload: bytes | None, *, landed: bool = True) -> bool:
        """End the flight of ``key`` with ``payload`` (``None``: nothing to share).

        Args:
            key: The flight.
            payload: The encoded value for the waiters, or ``None``.
            landed: Whether the value is now in the cache (late joiners are then told to
                read it); ``False`` when the write was bypassed or dropped.

        Returns:
            Whether anyone was waiting (the caller may skip encoding otherwise).
        """
        with self._lock:
            return self._finish(key, payload, landed=landed)

    def recent_value(self, key: str) -> bytes | None:
        """The value the flight of ``key`` shared with its waiters, if it landed less than
        :data:`RECENT_SECONDS` ago and had waiters; else ``None``."""
        with self._lock:
            landed = self._recent.get(key)
            if landed is None or time.monotonic() - landed[0] >= RECENT_SECONDS:
                return None
            return landed[1]

    def has_waiters(self, key: str) -> bool:
        """Whether a flight of ``key`` has callers waiting for it."""
        flight = self._flights.get(key)
        return flight is not None and flight.waiting > 0

    def abandon(self, key: str, owner: Any) -> None:
        """End ``owner``'s flight of ``key`` without a value (its model call failed)."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and flight.owner is owner:
                self._finish(key, None, landed=False)

    def _finish(self, key: str, payload: bytes | None, *, landed: bool) -> bool:
        flight = self._flights.pop(key, None)
        if flight is None:
            return False
        if landed:
            # The leader's update stored the value: late joiners should read the cache.
            self._remember(key, payload)
        if self._led.get(flight.owner) == key:
            del self._led[flight.owner]
        flight.payload = payload
        flight.done.set()
        for loop, future in flight.waiters:
            loop.call_soon_threadsafe(_resolve, future, payload)
        return flight.waiting > 0

    def _remember(self, key: str, payload: bytes | None) -> None:
        now = time.monotonic()
        self._forget(key)
        if payload is not None and len(payload) > _MAX_RECENT_BYTES:
            payload = None  # alone over the budget: it would only push out the others
        self._recent[key] = (now, payload)
        self._recent_bytes += len(payload or b"")
        # Oldest first: drop the keys that are too old or too many ...
        while self._recent:
            oldest, (when, _) = next(iter(self._recent.items()))
            if now - when < RECENT_SECONDS and len(self._recent) <= _MAX_RECENT:
                break
            self._forget(oldest)
        # ... and, over the byte budget, the oldest values (their keys still tell late
        # callers to look the cache up again).
        if self._recent_bytes > _MAX_RECENT_BYTES:
            for old, (when, value) in list(self._recent.items()):
                if self._recent_bytes <= _MAX_RECENT_BYTES:
                    break
                if value is not None:
                    self._recent[old] = (when, None)
                    self._recent_bytes -= len(value)

    def _forget(self, key: str) -> None:
        _, value = self._recent.pop(key, (0.0, None))
        self._recent_bytes -= len(value or b"")

    async def wait_async(self, flight: _Flight) -> bytes | None:
        """Wait (bounded) on the running loop for ``flight``; its payload or ``None``."""
        loop = asyncio.get_running_loop()
        with self._lock:
            if flight.done.is_set():
                return flight.payload
            future: asyncio.Future[bytes | None] = loop.create_future()
            flight.waiters.append((loop, future))
        try:
            return await asyncio.wait_for(future, self.timeout)
        except asyncio.TimeoutError:  # not the builtin TimeoutError on Python 3.10
            return None

    def wait_sync(self, flight: _Flight) -> bytes | None:
        """Block (bounded) until ``flight`` ends; its payload or ``None``."""
        flight.done.wait(self.timeout)
        return flight.payload if flight.done.is_set() else None


def _resolve(future: asyncio.Future[bytes | None], payload: bytes | None) -> None:
    if not future.done():
        future.set_result(payload)
