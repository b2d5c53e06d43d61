"""Automatic pipelining of one event loop's concurrent commands (standalone Redis).

Private to :mod:`llmemo.stores.redis`. See :class:`AutoPipeline`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from llmemo.stores.redis._common import (
    CommandRunner,
    _on_connection,
    _packed,
    _pooled,
    _send,
    command_runner,
)

__all__ = ["AutoPipeline", "pipelining_runner"]

_Item = tuple[tuple[Any, ...], "asyncio.Future[Any]"]


class _Batch:
    """Commands sent together: each with the future its caller awaits; the task that
    sends them; how many callers still wait."""

    __slots__ = ("items", "task", "waiting")

    def __init__(self) -> None:
        self.items: list[_Item] = []
        self.task: asyncio.Task[None] | None = None
        self.waiting = 0


class AutoPipeline:
    """Sends the commands that callers on one event loop issue while another is in flight
    together, as one pipeline on one connection: one socket write for many callers
    instead of one each, and their replies read off one stream.

    A caller that finds nothing in flight sends its command at once, as
    :func:`~llmemo.stores.redis._common.command_runner` does (no added latency when
    lookups come one at a time). A caller that finds another in flight joins the open
    batch; the batch is sent by a task of its own when the loop next runs it, i.e. after
    every caller that was ready in the same turn of the loop has joined (no timer, no
    waiting). Replies are handed out in order as they are read, each to its own caller:
    an error reply (``WRONGTYPE``) raises for its caller only; a connection error or
    timeout raises for every caller whose reply had not been read, after the
    connection's own ``retry`` policy re-sent what was unanswered (so only commands that
    are safe to send twice, such as ``GET``, belong here).

    A caller that is cancelled (its time budget ran out) stops waiting; its reply is
    still read and dropped, so the connection stays in step and is not closed. The batch
    waits for its replies under the client's ``socket_timeout``, unless every caller of
    it has given up: then it is stopped and its connection closed, as a lone command's
    would be.

    Loop affinity: one instance serves one event loop, as its client does (the stores
    are used on one loop). Not thread-safe.

    Args:
        client: A standalone ``redis.asyncio.Redis`` with a connection pool.
    """

    __slots__ = ("_callbacks", "_direct", "_in_flight", "_open", "_pool", "_tasks")

    def __init__(self, client: Redis) -> None:
        self._pool = _pooled(client)
        if self._pool is None:
            raise ValueError("AutoPipeline needs a pooled standalone redis.asyncio.Redis")
        self._direct = command_runner(client)
        self._callbacks = client.response_callbacks
        self._in_flight = 0
        self._open: _Batch | None = None
        # Strong references to running batch tasks (the loop keeps only weak ones).
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, *args: Any) -> Any:
        """Send the command ``args`` and return its reply (with redis-py's reply callback
        applied), alone or in a batch; driver errors propagate."""
        if not self._in_flight:
            self._in_flight = 1
            try:
                return await self._direct(*args)
            finally:
                self._in_flight -= 1
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        batch = self._open
        if batch is None:
            batch = self._open = _Batch()
            batch.task = task = loop.create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        batch.items.append((args, future))
        batch.waiting += 1
        self._in_flight += 1
        try:
            return await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                future.exception()  # answered as we were cancelled: not "never retrieved"
            elif batch.waiting == 1:
                self._abandon(batch)
            raise
        finally:
            batch.waiting -= 1
            self._in_flight -= 1

    def _abandon(self, batch: _Batch) -> None:
        """The last caller waiting for ``batch`` gave up: stop it, as a lone command
        whose caller gives up is stopped (redis-py closes a connection interrupted
        mid-reply, so nothing waits on a silent server for nobody)."""
        if self._open is batch:
            self._open = None  # not started yet: later callers start another
        if batch.task is not None:
            batch.task.cancel()

    async def wait_idle(self) -> None:
        """Wait until every batch of the running loop sent so far has been answered (or
        has failed); batches of another loop (misuse) are not waited for."""
        loop = asyncio.get_running_loop()
        while pending := [task for task in self._tasks if task.get_loop() is loop]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None  # later callers start the next batch
        try:
            await _on_connection(self._pool, lambda connection: self._exchange(connection, batch))
        except BaseException as exc:
            for _, future in batch.items:
                if not future.done():
                    if isinstance(exc, asyncio.CancelledError):
                        future.cancel()
                    else:
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise  # cancellation (abandoned, or the loop shutting down) goes on
            # Exceptions went to the callers; the task itself ends quietly.

    async def _exchange(self, connection: Any, batch: _Batch) -> None:
        # On a retry (after a reconnect) only what is still unanswered goes again.
        items = [item for item in batch.items if not item[1].done()]
        if not items:
            return  # every caller gave up before the send
        await _send(connection, _packed(connection, tuple(args for args, _ in items)))
        callbacks = self._callbacks
        for args, future in items:
            # Every reply is read, whoever waits for it: the connection stays in step.
            try:
                reply = await connection.read_response()
            except ResponseError as exc:  # an error reply: this caller's alone
                _settle(future, exc, failed=True)
                continue
            callback = callbacks.get(args[0])
            try:
                outcome = reply if callback is None else callback(reply)
            except Exception as exc:  # a reply the callback refuses: this caller's alone
                _settle(future, exc, failed=True)
                continue
            _settle(future, outcome, failed=False)


def _settle(future: asyncio.Future[Any], outcome: Any, *, failed: bool) -> None:
    if future.done():
        return  # its caller was cancelled
    if failed:
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


def pipelining_runner(client: Redis | RedisCluster) -> tuple[CommandRunner, AutoPipeline | None]:
    """A command runner that pipelines concurrent callers (:class:`AutoPipeline`) on a
    pooled standalone client, with the pipeline (for :meth:`AutoPipeline.wait_idle`);
    else :func:`~llmemo.stores.redis._common.command_runner` and ``None``."""
    if _pooled(client) is None:
        return command_runner(client), None
    pipeline = AutoPipeline(client)  # type: ignore[arg-type]  # _pooled checked the type
    return pipeline, pipeline
