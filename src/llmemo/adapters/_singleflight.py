"""In-process single-flight for LangChain's lookup → model call → update sequence.

When many callers miss on the same ``(prompt, llm_string)`` at once, only the first (the
*leader*) should call the model; the others wait for the leader's ``update`` and are
served its value. LangChain calls ``lookup``, then the model, then ``update``, all in
the caller's task (async) or thread (sync), so the leader is identified by that task or
thread.

A flight is *confirmed* while its leader is known to be inside a model run (see
:mod:`llmemo.adapters._runwatch`: chat models look up inside their run, completion models
enter theirs just after the lookup). A waiter waits:

* for a confirmed flight, until the leader's ``update`` (it gets the value: each waiter
  decodes its own copy, so no two callers share mutable objects), the leader's model call
  fails or is cancelled, or the leader's task ends: the waiters are then released at once
  and join again, so that one of them leads the retry;
* for an unconfirmed flight (a bare ``lookup`` never followed by ``update``, or a run
  that ended without one), at most :data:`UNCONFIRMED_GRACE` seconds from the moment the
  flight was last confirmed or began: then the flight is dropped and the waiters join
  again (one leads);
* never more than ``timeout`` seconds in all (counted from its first join): then it misses
  and calls the model itself, without joining again.

The worst case for a caller is therefore ``timeout`` seconds (a confirmed leader whose
model call neither returns nor fails); a failed leader costs its waiters nothing, an
abandoned lookup at most :data:`UNCONFIRMED_GRACE` seconds per flight.

A caller whose lookup missed just before the leader's update landed would otherwise find
no flight and lead a second model call; so a completed key is remembered for
:data:`RECENT_SECONDS` (never longer than the entry's TTL, and forgotten on ``clear``),
and such a caller is told to look the cache up again instead. The value shared with the
flight's waiters (if it had any) is kept for as long, up to :data:`_MAX_RECENT_BYTES` in
all: when that second lookup cannot read the cache either (a burst that ran over the time
budget and opened the circuit breaker), the caller is served the value instead of calling
the model again.

Thread-safe: sync waiters (threads) and async waiters (on any event loop) share flights.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Literal

from llmemo.adapters import _runwatch

__all__ = ["RECENT", "RECENT_SECONDS", "UNCONFIRMED_GRACE", "SingleFlight"]

#: Returned by :meth:`SingleFlight.join` when the key's flight has just landed.
RECENT: Any = object()
#: Seconds a landed flight's key is remembered (at most; never past the entry's TTL).
RECENT_SECONDS = 5.0
#: Seconds waiters give a flight whose leader is not known to be in a model run.
UNCONFIRMED_GRACE = 2.0
_MAX_RECENT = 4096
# Most bytes of shared values kept for late callers (beyond it, the oldest are dropped
# and their keys only tell callers to look the cache up again).
_MAX_RECENT_BYTES = 16 * 1024 * 1024

#: How a wait ended: the leader's value, released (join again), or timed out (miss).
Outcome = Literal["value", "released", "timeout"]


@dataclass(eq=False)
class _Flight:
    owner: Any
    prompt: str
    done: threading.Event = field(default_factory=threading.Event)
    payload: bytes | None = None
    waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = field(
        default_factory=list
    )
    waiting: int = 0
    confirmed: bool = False
    # When the grace of an unconfirmed flight started (monotonic seconds).
    since: float = field(default_factory=time.monotonic)


def _current_owner() -> Any:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else ("thread", threading.get_ident())


class SingleFlight:
    """A table of flights, keyed by a string the caller derives from prompt and model.

    Args:
        timeout: Most seconds a waiter waits in all (see the module docstring).
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._flights: dict[str, _Flight] = {}
        self._led: dict[Any, dict[str, _Flight]] = {}  # owner -> the flights it leads
        # Tasks whose end abandons what they lead (one callback per task, ever).
        self._hooked: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        # Landed key -> (expiry, the value shared with its waiters or None), oldest first.
        self._recent: OrderedDict[str, tuple[float, bytes | None]] = OrderedDict()
        self._recent_bytes = 0  # of the values in _recent
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Flights in progress."""
        return len(self._flights)

    def join(self, key: str, prompt: str = "") -> Any:
        """Join the flight of ``key``: ``None`` if the caller leads it (it must call the
        model and ``complete``), :data:`RECENT` if that key's value has just been stored
        (look it up again), else the flight to wait for (:meth:`wait_async`,
        :meth:`wait_sync`). ``prompt`` ties a completion model's run to the flight."""
        owner = _current_owner()
        with self._lock:
            landed = self._recent.get(key)
            if landed is not None:
                if time.monotonic() < landed[0]:
                    return RECENT
                self._forget(key)
            flight = self._flights.get(key)
            if flight is not None and flight.owner != owner:
                if flight.confirmed or time.monotonic() - flight.since < UNCONFIRMED_GRACE:
                    flight.waiting += 1
                    return flight
                # Nobody is known to compute it (a bare lookup): drop it, lead anew.
                self._finish(key, None, landed=False)
            elif flight is not None:
                return None  # this caller leads it already (looked up twice)
            flight = self._flights[key] = _Flight(owner, prompt)
            led = self._led.setdefault(owner, {})
            led[key] = flight
            if len(led) >= 64 and not len(led) & (len(led) - 1):
                self._prune(led)  # at 64, 128, 256, ...: amortised O(1) per join
            if isinstance(owner, asyncio.Task) and owner not in self._hooked:
                self._hooked.add(owner)
                owner.add_done_callback(self._task_done)
        bound = (self, key, flight)
        run = _runwatch.active_run()
        if run is not None and _runwatch.bind(run, bound):
            self.confirm(key, flight)
        else:
            _runwatch.note_unbound(owner, prompt, bound)
        return None

    def complete(
        self, key: str, payload: bytes | None, *, landed: bool = True, ttl: float | None = None
    ) -> bool:
        """End the flight of ``key`` with ``payload`` (``None``: nothing to share).

        Args:
            key: The flight.
            payload: The encoded value for the waiters, or ``None``.
            landed: Whether the value is now in the cache (late joiners are then told to
                read it); ``False`` when the write was bypassed or dropped.
            ttl: Seconds the stored entry lives (``None``: no expiry): the value is not
                remembered for late callers past it.

        Returns:
            Whether anyone was waiting (the caller may skip encoding otherwise).
        """
        with self._lock:
            return self._finish(key, payload, landed=landed, ttl=ttl)

    def recent_value(self, key: str) -> bytes | None:
        """The value the flight of ``key`` shared with its waiters, if it landed less than
        :data:`RECENT_SECONDS` ago (and within its TTL) and had waiters; else ``None``."""
        with self._lock:
            landed = self._recent.get(key)
            if landed is None or time.monotonic() >= landed[0]:
                return None
            return landed[1]

    def forget_recent(self) -> None:
        """Forget every landed flight (the cache was cleared: nothing may be served)."""
        with self._lock:
            self._recent.clear()
            self._recent_bytes = 0

    def has_waiters(self, key: str) -> bool:
        """Whether a flight of ``key`` has callers waiting for it."""
        flight = self._flights.get(key)
        return flight is not None and flight.waiting > 0

    def confirm(self, key: str, flight: _Flight) -> None:
        """The leader of ``flight`` is inside a model run: waiters wait for it."""
        with self._lock:
            if self._flights.get(key) is flight:
                flight.confirmed = True

    def unconfirm(self, key: str, flight: _Flight) -> None:
        """The leader's model run ended: its ``update`` gets the grace from now."""
        with self._lock:
            if self._flights.get(key) is flight:
                flight.confirmed = False
                flight.since = time.monotonic()

    def abandon(self, key: str, flight: _Flight) -> None:
        """End ``flight`` without a value (its model call failed): waiters join again."""
        with self._lock:
            if self._flights.get(key) is flight:
                self._finish(key, None, landed=False)

    def _prune(self, led: dict[str, _Flight]) -> None:
        """End the flights of one leader that nobody is known to compute (bare lookups
        past their grace), so that a task or thread looking up many prompts without
        updating them does not accumulate flights."""
        expired = time.monotonic() - UNCONFIRMED_GRACE
        for key, flight in list(led.items()):
            if not flight.confirmed and flight.since < expired:
                self._finish(key, None, landed=False)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        with self._lock:
            for key, flight in list(self._led.get(task, {}).items()):
                if self._flights.get(key) is flight:
                    self._finish(key, None, landed=False)
            self._led.pop(task, None)

    def _finish(
        self, key: str, payload: bytes | None, *, landed: bool, ttl: float | None = None
    ) -> bool:
        flight = self._flights.pop(key, None)
        if flight is None:
            return False
        if landed:
            # The leader's update stored the value: late joiners should read the cache.
            self._remember(key, payload, ttl)
        led = self._led.get(flight.owner)
        if led is not None and led.get(key) is flight:
            del led[key]
            if not led:
                del self._led[flight.owner]
        flight.payload = payload
        flight.done.set()
        for loop, future in flight.waiters:
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, future)
        return flight.waiting > 0

    def _remember(self, key: str, payload: bytes | None, ttl: float | None) -> None:
        now = time.monotonic()
        self._forget(key)
        if payload is not None and len(payload) > _MAX_RECENT_BYTES:
            payload = None  # alone over the budget: it would only push out the others
        keep = RECENT_SECONDS if ttl is None else min(RECENT_SECONDS, ttl)
        self._recent[key] = (now + keep, payload)
        self._recent_bytes += len(payload or b"")
        # Oldest first: drop the keys that expired or are too many (a shorter TTL may
        # expire a younger key first: it is dropped when read) ...
        while self._recent:
            oldest, (expiry, _) = next(iter(self._recent.items()))
            if now < expiry and len(self._recent) <= _MAX_RECENT:
                break
            self._forget(oldest)
        # ... and, over the byte budget, the oldest values (their keys still tell late
        # callers to look the cache up again).
        if self._recent_bytes > _MAX_RECENT_BYTES:
            for old, (expiry, value) in list(self._recent.items()):
                if self._recent_bytes <= _MAX_RECENT_BYTES:
                    break
                if value is not None:
                    self._recent[old] = (expiry, None)
                    self._recent_bytes -= len(value)

    def _forget(self, key: str) -> None:
        _, value = self._recent.pop(key, (0.0, None))
        self._recent_bytes -= len(value or b"")

    def _limit(self, flight: _Flight, deadline: float) -> float:
        """When the current wait for ``flight`` ends (monotonic seconds)."""
        if flight.confirmed:
            return deadline
        return min(deadline, flight.since + UNCONFIRMED_GRACE)

    def _outcome(self, key: str, flight: _Flight, deadline: float) -> Outcome | None:
        """How the wait ends now, or ``None`` to wait on."""
        if flight.done.is_set():
            return "value" if flight.payload is not None else "released"
        now = time.monotonic()
        if now < self._limit(flight, deadline):
            return None
        if now >= deadline:
            return "timeout"
        with self._lock:  # unconfirmed past its grace: nobody is known to compute it
            if self._flights.get(key) is flight and not flight.confirmed:
                self._finish(key, None, landed=False)
        return "released"

    async def wait_async(self, key: str, flight: _Flight, deadline: float) -> Outcome:
        """Wait on the running loop for ``flight`` (bounded; see the module docstring).
        ``deadline`` is the caller's monotonic time limit; read ``flight.payload`` after
        a ``"value"``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        waiter = (loop, future)
        with self._lock:
            flight.waiters.append(waiter)
        try:
            while True:
                outcome = self._outcome(key, flight, deadline)
                if outcome is not None:
                    return outcome
                remaining = self._limit(flight, deadline) - time.monotonic()
                await asyncio.wait((future,), timeout=max(remaining, 0.0))
        finally:
            with self._lock:  # the flight may outlive this loop: never wake it later
                if not flight.done.is_set() and waiter in flight.waiters:
                    flight.waiters.remove(waiter)

    def wait_sync(self, key: str, flight: _Flight, deadline: float) -> Outcome:
        """Block until ``flight`` ends or the wait is over (as :meth:`wait_async`)."""
        while True:
            outcome = self._outcome(key, flight, deadline)
            if outcome is not None:
                return outcome
            flight.done.wait(max(self._limit(flight, deadline) - time.monotonic(), 0.0))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
