"""One worker thread that runs a blocking batch function, batching concurrent requests.

:class:`MicroBatcher` exists for the local embedder: a forward pass over 32 short texts
costs a few times one text's pass, not 32 times, so requests that arrive while the worker
is busy (or within a short window of each other) share one pass. A request that arrives
alone, with nothing else in flight, starts at once: the window is only waited when
requests are arriving together (the previous pass took more than one, or more than one is
already queued), so a single caller is not delayed.

Thread and loop affinity: :meth:`MicroBatcher.submit` may be called from any thread (and
so from any event loop); results come back as ``concurrent.futures.Future`` objects
(``asyncio.wrap_future`` them on a loop). The batch function only ever runs on the worker
thread, one call at a time, so it need not be thread-safe.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from llmemo.errors import BackendUnavailableError

__all__ = ["MicroBatcher"]

T = TypeVar("T")


@dataclass
class _Request(Generic[T]):
    texts: list[str]
    future: concurrent.futures.Future[list[T]] = field(default_factory=concurrent.futures.Future)


class MicroBatcher(Generic[T]):
    """Batches ``run(texts) -> results`` (one result per text, in order) across callers.

    Args:
        run: The blocking batch function; it runs on the worker thread only.
        window: Seconds to keep collecting once requests arrive together (0: never wait;
            a pass still takes everything queued while the previous one ran).
        max_batch: Most texts in one pass (a larger single request runs alone, whole).
        max_queue: Most texts waiting; a request beyond it fails at once with
            :class:`~llmemo.errors.BackendUnavailableError` instead of queueing behind
            seconds of work (a cache turns that into a miss).
        name: The worker thread's name.
    """

    def __init__(
        self,
        run: Callable[[list[str]], Sequence[T]],
        *,
        window: float,
        max_batch: int,
        max_queue: int,
        name: str = "llmemo-batcher",
    ) -> None:
        self._run = run
        self.window = window
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._name = name
        self._cond = threading.Condition()
        self._pending: collections.deque[_Request[T]] = collections.deque()
        self._queued_texts = 0
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._closed = False
        self._last_pass_requests = 0
        self._running = False
        #: Passes run so far and texts embedded in them (for tests and benchmarks).
        self.passes = 0
        self.texts_run = 0

    def submit(self, texts: list[str]) -> concurrent.futures.Future[list[T]]:
        """Queue ``texts``; the future resolves to their results (or the pass's exception).

        Raises:
            BackendUnavailableError: ``max_queue`` texts are already waiting.
            RuntimeError: the batcher was closed.
        """
        request: _Request[T] = _Request(list(texts))
        if self._pid != os.getpid():
            self._after_fork()
        with self._cond:
            if self._closed:
                raise RuntimeError("the embedder was closed")
            if self._queued_texts and self._queued_texts + len(texts) > self.max_queue:
                raise BackendUnavailableError(
                    f"the local embedder is overloaded: {self._queued_texts} texts are "
                    f"already queued (max_queue={self.max_queue})"
                )
            self._pending.append(request)
            self._queued_texts += len(request.texts)
            if self._thread is None:
                self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
                self._thread.start()
            self._cond.notify()
        return request.future

    def run_inline_if_idle(self, texts: list[str]) -> list[T] | None:
        """Run ``texts`` on the calling thread if nothing is queued or running; else
        ``None`` (then :meth:`submit` them). For blocking callers: it saves two thread
        switches, which on a loaded machine can cost more than the pass itself, while
        passes still never overlap.
        """
        if self._pid != os.getpid():
            self._after_fork()
        with self._cond:
            if self._running or self._pending or self._closed:
                return None
            self._running = True
        try:
            results = list(self._run(list(texts)))
        finally:
            with self._cond:
                self._running = False
                self._last_pass_requests = 1
                self.passes += 1
                self.texts_run += len(texts)
                self._cond.notify_all()
        return results

    def _after_fork(self) -> None:
        """In a forked child the worker thread does not exist: start afresh (what was
        queued belongs to the parent)."""
        self._cond = threading.Condition()
        self._pending = collections.deque()
        self._queued_texts = 0
        self._thread = None
        self._last_pass_requests = 0
        self._running = False
        self._pid = os.getpid()

    def close(self) -> None:
        """Stop the worker once the queued requests are done (it is a daemon thread, so
        an open batcher never keeps a process alive). Idempotent."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def _take(self) -> list[_Request[T]] | None:
        with self._cond:
            while (not self._pending or self._running) and not self._closed:
                self._cond.wait()
            if not self._pending:
                return None
            together = len(self._pending) > 1 or self._last_pass_requests > 1
            if together and self.window > 0:
                deadline = time.monotonic() + self.window
                while self._queued_texts < self.max_batch and not self._closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
            batch = [self._pending.popleft()]
            count = len(batch[0].texts)
            while self._pending and count + len(self._pending[0].texts) <= self.max_batch:
                request = self._pending.popleft()
                batch.append(request)
                count += len(request.texts)
            self._queued_texts -= count
            self._last_pass_requests = len(batch)
            self._running = True
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            # A caller that gave up (a cancelled task, a timed-out budget) costs nothing.
            live = [r for r in batch if r.future.set_running_or_notify_cancel()]
            texts = [text for request in live for text in request.texts]
            try:
                results = self._run(texts) if texts else []
            except BaseException as exc:  # handed to every caller of this pass
                for request in live:
                    request.future.set_exception(exc)
                continue
            finally:
                with self._cond:
                    self._running = False
                    if texts:
                        self.passes += 1
                        self.texts_run += len(texts)
                    self._cond.notify_all()
            start = 0
            for request in live:
                end = start + len(request.texts)
                request.future.set_result(list(results[start:end]))
                start = end
