"""A small loopback TCP proxy that can black-hole its connections, for fault tests.

The proxy runs its own event loop in a daemon thread, so it serves async tests (whose loop
it must not share: a black-holed read would never wake up) and sync tests (whose thread
blocks in socket calls) alike::

    with TcpProxy(target_port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        ...
        proxy.blackhole()   # keep every connection open, forward nothing either way
        ...
        proxy.restore()     # forward again (connections opened from now on work)

While black-holed the proxy still accepts new connections, reads what the client sends
and drops it, and never answers: from the client's side the server is alive at the TCP
level but silent, the case a connect timeout cannot detect. Bytes that arrive while
black-holed are dropped for good, so a connection used during the black hole stays
broken after :meth:`restore` (its client has to reconnect, which it does after a
timeout). :meth:`stop` closes everything and joins the thread; it is idempotent.

Only ever binds and connects to 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType

__all__ = ["TcpProxy"]

_HOST = "127.0.0.1"
_CHUNK = 65536


class TcpProxy:
    """Forwards ``127.0.0.1:<port>`` to ``127.0.0.1:<target_port>`` until told otherwise.

    Args:
        target_port: Loopback port of the real server.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port: int | None = None
        self.accepted = 0
        self._blackholed = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    # -- control (any thread) ---------------------------------------------------------

    def start(self) -> TcpProxy:
        """Bind a free loopback port and start forwarding; returns ``self``."""
        if self._thread is not None:
            raise RuntimeError("the proxy is already started")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = self._loop = asyncio.new_event_loop()

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._handle, _HOST, 0))
                self.port = self._server.sockets[0].getsockname()[1]
            except BaseException as exc:  # reported to start()
                failure.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        self._thread = threading.Thread(target=run, name="tcp-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(5) or failure:
            self.stop()
            raise RuntimeError(f"the proxy did not start: {failure}")
        return self

    def blackhole(self) -> None:
        """Stop forwarding in both directions, closing nothing."""
        self._blackholed.set()

    def restore(self) -> None:
        """Forward again."""
        self._blackholed.clear()

    @property
    def blackholed(self) -> bool:
        """Whether the proxy drops everything now."""
        return self._blackholed.is_set()

    def stop(self) -> None:
        """Close the listener and every connection; stop the thread (idempotent)."""
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None:
            return
        if thread is not None and thread.is_alive():
            future = asyncio.run_coroutine_threadsafe(self._shutdown(), loop)
            with contextlib.suppress(Exception):
                future.result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
        if not loop.is_running():
            loop.close()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- the proxy loop ---------------------------------------------------------------

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self._writers.add(writer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream_writer: asyncio.StreamWriter | None = None
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                _HOST, self.target_port
            )
            self._writers.add(upstream_writer)
            await asyncio.gather(
                self._pump(reader, upstream_writer), self._pump(upstream_reader, writer)
            )
        except (OSError, asyncio.CancelledError):
            pass  # the target is down, or the proxy is stopping: drop the connection
        finally:
            for w in (writer, upstream_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.close()
            self._tasks.discard(task)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            data = await reader.read(_CHUNK)
            if not data:
                # One side closed: close the other, unless black-holed (then nothing,
                # not even a close, gets through).
                if not self._blackholed.is_set():
                    writer.close()
                return
            if self._blackholed.is_set():
                continue  # swallowed
            writer.write(data)
            await writer.drain()
