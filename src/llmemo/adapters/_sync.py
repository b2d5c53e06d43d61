"""Running the async core from sync code, and keeping loop-bound cores per event loop.

Two rules from the architecture meet here:

* A loop-bound resource (a ``redis.asyncio`` pool) is only used on the loop that made
  it, so a LangChain adapter keeps one core per running loop (:class:`PerLoop`).
* A sync call must neither deadlock nor freeze a running loop for longer than the call.
  Outside any loop, a sync call runs on a private event loop owned by the calling thread
  (no thread hop: the cheapest path). Inside a running loop the thread is already busy
  running that loop, so the call is handed to one shared background loop (an anyio
  blocking portal) and the caller waits for it; it never waits for the loop it blocks.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["PerLoop", "loop_running_here", "run_now", "run_sync"]

T = TypeVar("T")


class _LoopClosers:
    """What to close on one loop before it closes, and the hook that runs it.

    ``asyncio.run``, ``asyncio.Runner`` and pytest-asyncio all finalize a loop's async
    generators (``loop.shutdown_asyncgens()``) before closing it. A suspended async
    generator started on the loop therefore runs its ``finally`` on that loop at the
    right moment: that is where per-loop clients are closed, with the loop still able to
    run their ``aclose()``.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.closers: list[Callable[[], Awaitable[None]]] = []
        self.sentinel = self._watch()
        # Start the generator on the running loop, synchronously: asend() registers it
        # with the loop's async-generator hooks, and it stops at its first yield.
        step = self.sentinel.asend(None)
        with contextlib.suppress(StopIteration):
            step.send(None)

    async def _watch(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.run()

    async def run(self) -> None:
        closers, self.closers = self.closers, []
        for closer in closers:
            with contextlib.suppress(Exception):
                await closer()


_closers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClosers]
_closers = weakref.WeakKeyDictionary()
_closers_lock = threading.Lock()


def _register_closer(
    loop: asyncio.AbstractEventLoop, closer: Callable[[], Awaitable[None]]
) -> None:
    """Run ``closer`` on ``loop`` when the loop is shut down (must run on ``loop``)."""
    with _closers_lock:
        entry = _closers.get(loop)
        if entry is None:
            entry = _closers[loop] = _LoopClosers(loop)
        entry.closers.append(closer)


async def _run_closers(loop: asyncio.AbstractEventLoop) -> None:
    with _closers_lock:
        entry = _closers.get(loop)
    if entry is not None:
        await entry.run()


def _shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed() or loop.is_running():
        return
    # The finalizer may run (garbage collection) in a thread that is running another
    # loop, where run_until_complete is impossible: then only close this loop.
    if loop_running_here():
        loop.close()
        return
    for step in (_run_closers(loop), loop.shutdown_asyncgens()):
        try:
            loop.run_until_complete(step)
        except Exception:
            step.close()  # never leave a coroutine unawaited (it would warn at GC)
    loop.close()


def loop_running_here() -> bool:
    """Whether an event loop is running in the calling thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _ThreadLoop:
    """An event loop private to one thread; closed when the thread's locals go, or at exit."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        weakref.finalize(self, _shutdown_loop, self.loop)


_thread_state = threading.local()
_portal_lock = threading.Lock()
_portal: Any = None
_portal_cm: Any = None


def _close_portal() -> None:
    global _portal, _portal_cm
    with _portal_lock:
        cm, _portal, _portal_cm = _portal_cm, None, None
    if cm is not None:
        with contextlib.suppress(Exception):
            cm.__exit__(None, None, None)


def _get_portal() -> Any:
    global _portal, _portal_cm
    with _portal_lock:
        if _portal is None:
            from anyio.from_thread import start_blocking_portal

            _portal_cm = start_blocking_portal()
            _portal = _portal_cm.__enter__()
            atexit.register(_close_portal)
        return _portal


def run_sync(function: Callable[..., Coroutine[Any, Any, T]], *args: Any) -> T:
    """Run ``function(*args)`` to completion from sync code and return its result.

    Outside a running loop, runs on this thread's private loop. Inside a running loop,
    runs on llmemo's shared background loop while this thread waits (the running loop is
    blocked only for the duration of the call, as any sync call blocks it).

    Exceptions of the coroutine propagate unchanged.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        state = getattr(_thread_state, "loop", None)
        if state is None or state.loop.is_closed():
            state = _thread_state.loop = _ThreadLoop()
        return state.loop.run_until_complete(function(*args))
    return _get_portal().call(function, *args)  # type: ignore[no-any-return]


def run_now(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine that never suspends to completion, with no event loop at all.

    The sync faces drive the async core this way over stores whose coroutines complete
    without awaiting anything pending (in-memory stores, the blocking Redis store, inline
    embedders): same code as the async path, none of an event loop's cost.

    Raises:
        RuntimeError: the coroutine suspended (a store or embedder that needs a loop was
            used on this path: a bug in llmemo). Exceptions of the coroutine propagate.
    """
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]
    coroutine.close()
    raise RuntimeError("llmemo: a sync-driven cache operation tried to wait on an event loop")


class PerLoop(Generic[T]):
    """One object per running event loop, created lazily by a factory.

    Each object is closed on its own loop when that loop is shut down by
    ``asyncio.run``/``asyncio.Runner`` (or by llmemo, for its private loops); a loop closed
    without ``shutdown_asyncgens()`` leaves its object unclosed. Lookup is a dict access
    keyed weakly by the loop; a closed object is forgotten.
    """

    def __init__(self, factory: Callable[[], T], closer: Callable[[T], Awaitable[None]]) -> None:
        """Args:
        factory: Makes the object for the current loop (called on that loop).
        closer: Releases an object, awaited on its loop when llmemo closes that loop.
        """
        self._factory = factory
        self._closer = closer
        self._objects: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T]
        self._objects = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self) -> T:
        """Return the object of the running loop, creating it on first use.

        Raises:
            RuntimeError: no event loop is running in this thread.
        """
        loop = asyncio.get_running_loop()
        obj = self._objects.get(loop)
        if obj is None:
            with self._lock:
                obj = self._objects.get(loop)
                if obj is None:
                    obj = self._objects[loop] = self._factory()
                    _register_closer(loop, functools.partial(self._close, loop, obj))
        return obj

    async def _close(self, loop: asyncio.AbstractEventLoop, obj: T) -> None:
        with self._lock:
            if self._objects.get(loop) is obj:
                del self._objects[loop]
        await self._closer(obj)

    def pop_current(self) -> T | None:
        """Forget and return the running loop's object, if any (the caller closes it)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            return self._objects.pop(loop, None)
