"""Fail-open policy: a cache must never be the reason an LLM call fails.

Every backend operation of a cache runs under a :class:`Guard`:

* a **time budget** (``operation_timeout`` seconds for store reads, ``write_timeout`` for
  store writes, ``embed_timeout`` for the embedder) enforced on the event loop; on
  llmemo's loop-free sync paths the clients' socket timeouts bound the time instead;
* a **circuit breaker** per guard (reads, writes and the embedder each have their own:
  failing writes, e.g. a full server, never switch off reads that work): after
  ``breaker_threshold`` consecutive failures the guard stops calling the backend for
  ``breaker_reset`` seconds (a skipped call costs nothing), then lets one probe through
  (half-open); the probe's success closes it again;
* a **one-time setup** (imports, connecting, probing the server, checking or creating an
  index, loading an embedding model) that a call may need first runs *before* its budget
  starts, under its own bound (``setup_timeout``; a model load under ``admin_timeout``),
  shared by concurrent first callers;
* with ``errors="open"`` (the default) a failed or skipped lookup is a miss and a failed
  write is dropped, each counted, with a warning at most once per ``warn_interval``
  seconds per kind of failure; with ``errors="raise"`` the typed
  :mod:`llmemo.errors` exception propagates.

Only backend failures are absorbed (:class:`~llmemo.errors.BackendError`, timeouts, and
any exception of the embedder); invalid arguments (``TypeError``,
``ConfigurationError``) always raise, and ``asyncio.CancelledError`` is never swallowed.
Warnings go to the ``llmemo`` logger and never include connection URLs or credentials.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from llmemo.config import validate_positive_seconds
from llmemo.errors import BackendError, BackendTimeoutError, BackendUnavailableError
from llmemo.errors import ConfigurationError as _ConfigurationError

if TYPE_CHECKING:
    from llmemo.caches.base import CacheStats

__all__ = [
    "DEFAULT_ADMIN_TIMEOUT",
    "DEFAULT_MAX_ENTRY_BYTES",
    "Breaker",
    "FailurePolicy",
    "Guard",
]

T = TypeVar("T")
logger = logging.getLogger("llmemo")

ErrorMode = Literal["open", "raise"]


def _positive(value: object, parameter: str, *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    validate_positive_seconds(value, parameter)


#: Default largest encoded entry a cache writes, in bytes (see ``FailurePolicy``).
DEFAULT_MAX_ENTRY_BYTES = 4 * 1024 * 1024
#: Default seconds each command of an administrative call may take (``clear()``, index
#: creation, the ``llmemo`` CLI's commands).
DEFAULT_ADMIN_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """How a cache behaves when its backend or embedder fails (all times in seconds).

    Attributes:
        errors: ``"open"``: failures become misses / dropped writes; ``"raise"``: they
            propagate as :mod:`llmemo.errors` exceptions.
        operation_timeout: Budget of one store read (a lookup's get or vector query);
            ``None`` for no budget beyond the client's socket timeouts.
        write_timeout: Budget of one store write (default 2 s: an HNSW insert queues
            behind others under a burst of writes, and a dropped write costs a model
            call later, while nobody waits for a write); ``None`` for no budget beyond
            the socket timeouts. Writes have their own circuit breaker.
        embed_timeout: Budget of one embedder call, or ``None``.
        setup_timeout: Bound of a cache's one-time setup on first use in a process (or
            event loop): connecting, probing the server, checking or creating the
            index. It runs before the call's own budget starts, once for all
            concurrent first callers; a failed setup counts as a failed call and is
            tried again by the next call.
        admin_timeout: Seconds each command of an administrative call (``clear()``,
            index creation, ``setup()``) may take, and the bound of an embedding
            model's one-time load; ``None`` for no bound.
        max_entry_bytes: Largest encoded entry written, in bytes (default 4 MiB, see
            :data:`DEFAULT_MAX_ENTRY_BYTES`); a bigger one is not sent (counted in
            ``writes_too_large`` and ``writes_dropped``; never a breaker failure).
            ``None`` for no cap.
        breaker_threshold: Consecutive failures that open the circuit.
        breaker_reset: Seconds the circuit stays open before one probe is let through.
        warn_interval: Least seconds between two warnings about the same kind of failure.
    """

    errors: ErrorMode = "open"
    operation_timeout: float | None = 0.1
    embed_timeout: float | None = 10.0
    breaker_threshold: int = 5
    breaker_reset: float = 1.0
    warn_interval: float = 30.0
    write_timeout: float | None = 2.0
    setup_timeout: float | None = 5.0
    admin_timeout: float | None = DEFAULT_ADMIN_TIMEOUT
    max_entry_bytes: int | None = DEFAULT_MAX_ENTRY_BYTES

    def __post_init__(self) -> None:
        if self.errors not in ("open", "raise"):
            raise _ConfigurationError(f"errors must be 'open' or 'raise'; got {self.errors!r}")
        _positive(self.operation_timeout, "operation_timeout", allow_none=True)
        _positive(self.embed_timeout, "embed_timeout", allow_none=True)
        _positive(self.write_timeout, "write_timeout", allow_none=True)
        _positive(self.setup_timeout, "setup_timeout", allow_none=True)
        _positive(self.admin_timeout, "admin_timeout", allow_none=True)
        cap = self.max_entry_bytes
        if cap is not None and (not isinstance(cap, int) or isinstance(cap, bool) or cap < 1):
            raise _ConfigurationError(
                f"max_entry_bytes must be an integer >= 1 or None; got {cap!r}"
            )
        _positive(self.breaker_reset, "breaker_reset")
        _positive(self.warn_interval, "warn_interval")
        threshold = self.breaker_threshold
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise _ConfigurationError(
                f"breaker_threshold must be an integer >= 1; got {threshold!r}"
            )


class Breaker:
    """A thread-safe circuit breaker: closed → open → half-open → closed.

    Each call admitted by :meth:`admit` gets a ticket, and reports its outcome with it.
    Only the half-open probe's outcome moves an open circuit: calls that were already in
    flight when it opened neither close it (a late success) nor re-open it (a late
    failure), so the circuit changes state, and the guard logs, once per change.

    Args:
        threshold: Consecutive failures that open it.
        reset: Seconds it stays open before letting one probe through.
        clock: Monotonic seconds (injectable for tests).
    """

    def __init__(
        self, threshold: int, reset: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._threshold = threshold
        self._reset = reset
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False
        # Bumped each time the circuit opens; a ticket is generation * 2 (+ 1 for the
        # probe), so an outcome can tell whether it belongs to the current state.
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def state(self) -> Literal["closed", "open", "half-open"]:
        """``"closed"`` (calls pass), ``"open"`` (calls skipped) or ``"half-open"``."""
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._probing or self._clock() - self._opened_at >= self._reset:
                return "half-open"
            return "open"

    def admit(self) -> int | None:
        """A ticket for a call that may go to the backend now, or ``None`` to skip it
        (open circuit; half-open admits one probe)."""
        if self._opened_at is None:  # fast path, no lock: the common case
            return self._generation * 2
        with self._lock:
            if self._opened_at is None:
                return self._generation * 2
            if self._probing or self._clock() - self._opened_at < self._reset:
                return None
            self._probing = True
            return self._generation * 2 + 1

    def allow(self) -> bool:
        """Whether a call may go to the backend now (takes the probe when half-open)."""
        return self.admit() is not None

    def success(self, ticket: int) -> bool:
        """Record the success of the call admitted with ``ticket``; return whether this
        closed an open circuit (only the current probe's success does)."""
        if self._opened_at is None and self._failures == 0:
            return False
        with self._lock:
            if self._opened_at is None:
                if ticket >> 1 == self._generation:
                    self._failures = 0
                return False
            if ticket != self._generation * 2 + 1 or not self._probing:
                return False  # in flight since before it opened: says nothing new
            self._failures = 0
            self._opened_at = None
            self._probing = False
            return True

    def failure(self, ticket: int) -> bool:
        """Record the failure of the call admitted with ``ticket``; return whether this
        opened the circuit (the threshold reached, or the current probe failed)."""
        with self._lock:
            if self._opened_at is None:
                if ticket >> 1 != self._generation:
                    return False  # admitted before the last open/close cycle
                self._failures += 1
                if self._failures < self._threshold:
                    return False
            elif ticket != self._generation * 2 + 1 or not self._probing:
                return False  # already open; an older call's failure changes nothing
            self._generation += 1
            self._opened_at = self._clock()
            self._probing = False
            return True


class _Watch:
    """One guarded call under a budget: its task, deadline (loop time) and whether the
    budget ran out (the task was then cancelled by :class:`_Deadlines`)."""

    __slots__ = ("cancelling", "deadline", "expired", "owner", "task")

    def __init__(self, owner: _Deadlines, task: asyncio.Task[Any], deadline: float) -> None:
        self.owner = owner
        self.task = task
        self.deadline = deadline
        self.cancelling: int = task.cancelling()  # type: ignore[attr-defined]
        self.expired = False


class _Deadlines:
    """The budgets of one event loop's guarded calls, enforced by one timer.

    ``asyncio.timeout`` schedules and cancels a timer handle per call (about 5 us, plus a
    cancelled handle left in the loop's heap until it is cleaned); on a cache hit of
    ~100 us that is a visible share. Here a call registers its deadline in a dict and one
    timer per loop, set for the earliest deadline, cancels the tasks whose budget ran out
    (the guard turns that cancellation into a timeout, as ``asyncio.timeout`` does).
    """

    __slots__ = ("_next", "_watches")

    # Kept as the value of a WeakKeyDictionary keyed by the loop, so it holds no strong
    # reference to the loop (neither the loop nor a timer handle, which refers to it):
    # a loop that ``asyncio.run`` closed can be collected. Timers are never cancelled
    # (a surplus one finds nothing to do); ``_next`` is when the earliest is due.

    def __init__(self) -> None:
        self._watches: dict[int, _Watch] = {}
        self._next: float | None = None

    def enter(
        self, loop: asyncio.AbstractEventLoop, task: asyncio.Task[Any], seconds: float
    ) -> _Watch:
        watch = _Watch(self, task, loop.time() + seconds)
        self._watches[id(watch)] = watch
        if self._next is None or watch.deadline < self._next:
            loop.call_at(watch.deadline, self._expire)
            self._next = watch.deadline
        return watch

    def leave(self, watch: _Watch) -> None:
        del self._watches[id(watch)]

    def _expire(self) -> None:
        loop = asyncio.get_running_loop()  # a timer callback runs on its loop
        now = loop.time()
        if self._next is not None and self._next <= now:
            self._next = None  # the earliest timer is this one (or already past)
        earliest: float | None = None
        for watch in self._watches.values():
            if watch.expired:
                continue
            if watch.deadline <= now:
                watch.expired = True
                watch.task.cancel()
            elif earliest is None or watch.deadline < earliest:
                earliest = watch.deadline
        if earliest is not None and (self._next is None or earliest < self._next):
            loop.call_at(earliest, self._expire)
            self._next = earliest


def _cancelled_by_others(watch: _Watch) -> bool:
    """Withdraw our cancellation of an expired call's task; whether another is pending
    (then the ``CancelledError`` is not ours to turn into a timeout). Python 3.11+."""
    remaining: int = watch.task.uncancel()  # type: ignore[attr-defined]
    return remaining > watch.cancelling


_deadlines: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Deadlines]
_deadlines = weakref.WeakKeyDictionary()


def _deadlines_of(loop: asyncio.AbstractEventLoop) -> _Deadlines:
    deadlines = _deadlines.get(loop)
    if deadlines is None:
        deadlines = _deadlines[loop] = _Deadlines()
    return deadlines


_LABELS = {"store": "store", "write": "store (writes)", "embedder": "embedder"}


class Guard:
    """Runs one kind of backend call (store reads, store writes or the embedder) under a
    :class:`FailurePolicy`.

    One guard is shared by every event loop's core of a cache, so the breaker sees the
    backend's health, not one loop's.

    Args:
        policy: The policy.
        kind: ``"store"`` (reads: ``operation_timeout``), ``"write"`` (store writes:
            ``write_timeout``) or ``"embedder"`` (``embed_timeout``); also named in
            messages.
        stats: Counters to update.
        clock: Monotonic seconds for the breaker and the warning rate limit.
    """

    def __init__(
        self,
        policy: FailurePolicy,
        kind: Literal["store", "write", "embedder"],
        stats: CacheStats,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.kind = kind
        self.label = _LABELS[kind]
        self.stats = stats
        self.breaker = Breaker(policy.breaker_threshold, policy.breaker_reset, clock)
        self._threshold = policy.breaker_threshold
        self._reset = policy.breaker_reset
        self._scoped: dict[str, Breaker] = {}
        self._timeout = {
            "store": policy.operation_timeout,
            "write": policy.write_timeout,
            "embedder": policy.embed_timeout,
        }[kind]
        # A model load is long and happens once; a store's setup is a few round trips.
        self._setup_timeout = policy.admin_timeout if kind == "embedder" else policy.setup_timeout
        self._clock = clock
        self._last_warning: dict[str, float] = {}
        self._warn_lock = threading.Lock()
        # The loop of the last guarded call and its deadlines (most caches use one loop).
        # (weakly: a closed loop must be collectable).
        self._last_deadlines: tuple[weakref.ref[asyncio.AbstractEventLoop], _Deadlines] | None = (
            None
        )

    @property
    def timeout(self) -> float | None:
        """This guard's budget per call, in seconds (``None``: none)."""
        return self._timeout

    def _watch(self, seconds: float | None) -> _Watch | None:
        """Register a budget of ``seconds`` with its loop's :class:`_Deadlines`, or ``None``
        where no budget is enforced here: no budget, no running task (llmemo's loop-free
        sync paths rely on the clients' socket timeouts), or Python 3.10 (no
        ``Task.uncancel``; the socket timeouts bound the time there too)."""
        if seconds is None or sys.version_info < (3, 11):
            return None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        task = asyncio.current_task(loop)
        if task is None:
            return None
        last = self._last_deadlines  # one read: other threads run other loops
        if last is None or last[0]() is not loop:
            last = self._last_deadlines = (weakref.ref(loop), _deadlines_of(loop))
        return last[1].enter(loop, task, seconds)

    def breaker_for(self, scope: str | None) -> Breaker:
        """The breaker of ``scope`` (e.g. one Redis Cluster node), made on first use; the
        guard's own :attr:`breaker` for ``None``."""
        if scope is None:
            return self.breaker
        breaker = self._scoped.get(scope)
        if breaker is None:
            with self._warn_lock:
                breaker = self._scoped.setdefault(
                    scope, Breaker(self._threshold, self._reset, self._clock)
                )
        return breaker

    async def _within(
        self, action: Callable[[], Awaitable[T]], seconds: float | None, what: str
    ) -> T:
        """Await ``action()`` within ``seconds``; over it, raise ``BackendTimeoutError``."""
        watch = self._watch(seconds)
        if watch is None:
            return await action()
        try:
            return await action()
        except asyncio.CancelledError:
            if not watch.expired or _cancelled_by_others(watch):
                raise
            raise BackendTimeoutError(
                f"{self.label} {what} exceeded its {seconds} s budget"
            ) from None
        finally:
            watch.owner.leave(watch)

    async def call(
        self,
        operation: str,
        action: Callable[[], Awaitable[T]],
        fallback: T,
        scope: str | None = None,
        *,
        setup: Callable[[], Awaitable[object]] | None = None,
        timeout: float | Literal["default"] | None = "default",
    ) -> T:
        """Await ``action()`` under the budget and the breaker of ``scope``.

        ``scope`` names the part of the backend the call goes to (a cluster node), so that
        a failing node opens only its own circuit; ``None`` is the whole backend.
        ``setup``, when given, is awaited first under its own bound (``setup_timeout``;
        ``admin_timeout`` for the embedder), outside the call's budget; its failure is
        the call's. ``timeout`` replaces this guard's budget for this call (e.g. a write
        on a lookup's path that must not wait longer than a read).

        Returns:
            The action's result, or ``fallback`` when the call failed or was skipped and
            the policy is ``"open"``.

        Raises:
            BackendError: a failure (or an open circuit) with ``errors="raise"``.
        """
        breaker = self.breaker if scope is None else self.breaker_for(scope)
        ticket = breaker.admit()
        if ticket is None:
            self.stats.add("breaker_skips")
            if self.policy.errors == "raise":
                raise BackendUnavailableError(
                    f"{self.label} circuit is open after repeated failures; {operation} skipped"
                )
            return fallback
        try:
            if setup is not None:
                await self._within(setup, self._setup_timeout, f"{operation} setup")
            budget = self._timeout if timeout == "default" else timeout
            result = await self._within(action, budget, operation)
        except TimeoutError as exc:  # BackendTimeoutError, or the client's own timeout
            error = (
                exc
                if isinstance(exc, BackendError)
                else BackendTimeoutError(
                    f"{self.label} {operation} exceeded its {self._timeout} s budget"
                )
            )
            return self._failed(operation, error, exc, fallback, breaker, ticket)
        except BackendError as exc:
            return self._failed(operation, exc, exc, fallback, breaker, ticket)
        except Exception as exc:
            if self.kind != "embedder":
                raise  # a bug or a caller error, not a backend failure
            failure = BackendError(f"embedder failed: {type(exc).__name__}: {exc}")
            return self._failed(operation, failure, exc, fallback, breaker, ticket)
        if breaker.success(ticket):
            self.stats.add("breaker_closes")
            logger.warning("llmemo: %s is back; circuit closed", self.label)
        return result

    def _failed(
        self,
        operation: str,
        error: BackendError,
        cause: BaseException,
        fallback: T,
        breaker: Breaker,
        ticket: int,
    ) -> T:
        kind = (
            "timeout"
            if isinstance(error, BackendTimeoutError)
            else "unavailable"
            if isinstance(error, BackendUnavailableError)
            else "backend"
        )
        self.stats.add("embedder_errors" if self.kind == "embedder" else f"errors_{kind}")
        if breaker.failure(ticket):
            self.stats.add("breaker_opens")
            self._warn(
                f"{self.label}-breaker",
                f"llmemo: {self.label} circuit opened after repeated failures",
            )
        if self.policy.errors == "raise":
            if error is cause:
                raise error
            raise error from cause
        self._warn(
            f"{self.label}-{kind}",
            f"llmemo: {self.label} {operation} failed ({kind}); continuing without the cache: "
            f"{error}",
        )
        return fallback

    def warn_once(self, kind: str, message: str) -> None:
        """Log ``message`` unless one of the same ``kind`` was logged within the policy's
        ``warn_interval``."""
        self._warn(kind, message)

    def _warn(self, kind: str, message: str) -> None:
        now = self._clock()
        with self._warn_lock:
            last = self._last_warning.get(kind)
            if last is not None and now - last < self.policy.warn_interval:
                return
            self._last_warning[kind] = now
        logger.warning("%s", message)
