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
import itertools
import threading
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine
from typing import Any, Generic, TypeVar

__all__ = ["PerLoop", "loop_running_here", "run_now", "run_sync"]

T = TypeVar("T")


#: Seconds llmemo's closers of one loop may take when the loop is closed by hand (each
#: redis-py disconnect is bounded by its own connect timeout well within this).
_CLOSE_TIMEOUT = 5.0
#: Rounds of closing when closers make new per-loop objects on the closing loop.
_CLOSE_ROUNDS = 3


class _LoopState:
    """What llmemo made on one event loop, and how it is closed before the loop closes.

    ``objects`` maps a :class:`PerLoop` (by its token) to its object and closer. The
    closers run on the loop, before it closes, whichever way it is closed:

    * ``loop.close()`` (asyncio.run, asyncio.Runner and pytest-asyncio call it last, and
      so does code that closes a loop by hand without ``shutdown_asyncgens()``): llmemo
      replaces the loop's ``close`` (an instance attribute, the class is untouched) with
      one that first runs the closers on the loop, then closes it. Once a loop is closed
      nothing can run on it, and a connection's transport cannot even be closed (its
      ``close()`` schedules a callback on the loop): closing *before* is the only clean
      way to give the socket back.
    * A loop whose ``close`` cannot be replaced (no instance attributes) gets an async
      generator started on it instead; ``shutdown_asyncgens()`` runs the closers from its
      ``finally``. Such a loop closed without ``shutdown_asyncgens()`` keeps its objects.

    After the closers ran the state is dropped, so a closed loop is not kept alive.
    """

    __slots__ = ("objects", "sentinel")

    def __init__(self) -> None:
        self.objects: dict[int, tuple[Any, Callable[[Any], Awaitable[None]]]] = {}
        self.sentinel: AsyncGenerator[None, None] | None = None

    def start_sentinel(self) -> None:
        """Start the generator on the running loop, synchronously: ``asend()`` registers
        it with the loop's async-generator hooks, and it stops at its first yield."""
        self.sentinel = self._watch()
        step = self.sentinel.asend(None)
        with contextlib.suppress(StopIteration):
            step.send(None)

    async def _watch(self) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await self.close_all()
            with _states_lock:  # closed: forget the loop (the generator refers to it)
                loop = asyncio.get_running_loop()
                if _states.get(loop) is self:
                    del _states[loop]

    async def close_all(self) -> None:
        while self.objects:
            with _states_lock:
                if not self.objects:
                    break
                _, (obj, closer) = self.objects.popitem()
            with contextlib.suppress(Exception):
                await closer(obj)


_states: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState]
_states = weakref.WeakKeyDictionary()
# Guards _states and every state's objects (PerLoop.get's creation path, closers).
_states_lock = threading.RLock()


def _state_for(loop: asyncio.AbstractEventLoop) -> _LoopState:
    """The running ``loop``'s state, made (and its close hooked) on first use."""
    with _states_lock:
        state = _states.get(loop)
        if state is None:
            state = _states[loop] = _LoopState()
            if not _hook_close(loop):
                state.start_sentinel()
        return state


def _hook_close(loop: asyncio.AbstractEventLoop) -> bool:
    """Make ``loop.close()`` run llmemo's closers first; whether that was possible."""
    if getattr(loop.close, "_llmemo_hook", False):
        return True  # hooked before (the loop was forgotten while still open)
    original = loop.close
    alive = weakref.ref(loop)

    def close() -> None:
        # The loop's own __del__ closes an unclosed loop during garbage collection; weak
        # references to it are cleared by then, and nothing may run on it: just close.
        target = alive()
        if target is not None and not target.is_running() and not target.is_closed():
            for _ in range(_CLOSE_ROUNDS):  # a closer may have made a new object there
                if target not in _states:
                    break
                _close_objects(target)
        original()

    close._llmemo_hook = True  # type: ignore[attr-defined]
    try:
        loop.close = close  # type: ignore[method-assign]
    except (AttributeError, TypeError):  # pragma: no cover - a loop without a __dict__
        return False
    return True


def _close_objects(loop: asyncio.AbstractEventLoop) -> None:
    """Run the closers of a stopped, unclosed ``loop`` on it, then forget its state.

    From a thread that runs another loop (``run_until_complete`` is impossible there) the
    stopped loop is run in a short-lived helper thread while the caller waits.
    """
    with _states_lock:
        state = _states.pop(loop, None)
    if state is None:
        return
    if state.objects:

        async def close_all() -> None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(state.close_all(), _CLOSE_TIMEOUT)

        def run() -> None:
            step = close_all()
            try:
                loop.run_until_complete(step)
            except Exception:
                step.close()  # never leave a coroutine unawaited (it would warn at GC)

        if loop_running_here():
            helper = threading.Thread(target=run, name="llmemo-loop-close", daemon=True)
            helper.start()
            helper.join()
        else:
            run()
    if state.sentinel is not None:
        # Nothing left to close: finish the generator now, without the loop, so that it
        # never asks the closed loop to finalize it.
        step = state.sentinel.aclose()
        with contextlib.suppress(StopIteration, RuntimeError):
            step.send(None)
        step.close()


def _shutdown_loop(loop: asyncio.AbstractEventLoop) -> None:
    if loop.is_closed() or loop.is_running():
        return
    # The finalizer may run (garbage collection) in a thread that is running another
    # loop, where run_until_complete is impossible: closing runs llmemo's closers on a
    # helper thread, and only the loop's other async generators are left unfinalized.
    if not loop_running_here():
        _close_objects(loop)
        step = loop.shutdown_asyncgens()
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

    Each object is closed on its own loop before that loop closes: by
    ``asyncio.run``/``asyncio.Runner``, by llmemo for its private loops, and by a plain
    ``loop.close()`` without ``shutdown_asyncgens()`` (see :class:`_LoopState`). The
    loop's state holds the objects, and is dropped once they are closed: a closed loop
    is not kept alive. A loop that is dropped without ever being closed keeps its
    objects (asyncio warns about such a loop).
    """

    _tokens = itertools.count()

    def __init__(self, factory: Callable[[], T], closer: Callable[[T], Awaitable[None]]) -> None:
        """Args:
        factory: Makes the object for the current loop (called on that loop).
        closer: Releases an object, awaited on its loop before that loop closes.
        """
        self._factory = factory
        self._closer = closer
        self._token = next(self._tokens)

    def get(self) -> T:
        """Return the object of the running loop, creating it on first use.

        Raises:
            RuntimeError: no event loop is running in this thread.
        """
        loop = asyncio.get_running_loop()
        state = _states.get(loop)
        if state is not None:
            entry = state.objects.get(self._token)
            if entry is not None:
                return entry[0]  # type: ignore[no-any-return]
        with _states_lock:
            state = _state_for(loop)
            entry = state.objects.get(self._token)
            if entry is None:
                entry = state.objects[self._token] = (self._factory(), self._closer)
            return entry[0]

    def pop_current(self) -> T | None:
        """Forget and return the running loop's object, if any (the caller closes it)."""
        loop = asyncio.get_running_loop()
        with _states_lock:
            state = _states.get(loop)
            entry = None if state is None else state.objects.pop(self._token, None)
        return None if entry is None else entry[0]
