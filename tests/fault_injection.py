"""Redis faults on loopback, for the fault tests and ``python -m benchmarks faults``.

Each :class:`Fault` owns the server (or port) it damages, so a scenario never harms the
session's shared server::

    with PausedServer() as fault:          # a private redis-server, healthy
        cache = RedisCache(fault.url, ...)
        ...                                # warm up while healthy
        fault.begin()                      # CLIENT PAUSE
        ...                                # lookups now hang server-side
        fault.end()                        # CLIENT UNPAUSE: serving again

Every fault is bounded on its own (a pause or sleep expires by itself, a proxy and the
servers are stopped by :meth:`Fault.close`); servers are only ever stopped by their pid.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import time
from types import TracebackType

from tcp_proxy import TcpProxy

from redis_server import RedisServer, free_port

__all__ = [
    "FAULTS",
    "BlackholedConnection",
    "DeadPort",
    "Fault",
    "KilledServer",
    "PausedServer",
    "SleepingServer",
]


def _server(port: int | None = None) -> RedisServer:
    # No modules: starts in a few ms; vector sets are built into the Redis 8 binary.
    return RedisServer(
        modules=False, port=port, extra_args=["--enable-debug-command", "local"]
    ).start()


class Fault:
    """One kind of failure of the Redis server behind :attr:`url`.

    Attributes:
        name: Short name (test ids, benchmark rows).
        description: What the fault does, for reports.
        counter: The :class:`~llmemo.CacheStats` counter a failed operation lands in.
        healthy_first: The server serves before :meth:`begin` (False: never started).
        keeps_data: Entries written before the fault are still there after :meth:`end`.
    """

    name = "fault"
    description = ""
    counter = "errors_unavailable"
    healthy_first = True
    keeps_data = True

    def __init__(self) -> None:
        self.server: RedisServer | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """The URL a cache under test connects to."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Fault:
        """Bring up what the fault needs (healthy, unless :attr:`healthy_first` is false)."""
        self.server = _server()
        self.port = self.server.port or 0
        return self

    def begin(self) -> None:
        """Make the server fail."""
        raise NotImplementedError

    def end(self) -> None:
        """Make the server serve again; returns once it does."""
        raise NotImplementedError

    @property
    def in_force(self) -> bool:
        """Whether the fault still holds (faults that end by themselves may be over)."""
        return True

    def close(self) -> None:
        """Stop everything this fault started (idempotent)."""
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> Fault:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class DeadPort(Fault):
    """Nothing listens on the port (Redis never started); :meth:`end` starts a server there."""

    name = "dead-port"
    description = "nothing listens on the port (connection refused)"
    healthy_first = False
    keeps_data = False

    def start(self) -> Fault:
        self.port = free_port()
        return self

    def begin(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def end(self) -> None:
        self.server = _server(self.port)


class KilledServer(Fault):
    """The server is killed with SIGKILL (by its pid); :meth:`end` restarts it on the port."""

    name = "killed"
    description = "server killed with SIGKILL mid-run, restarted on the same port"
    keeps_data = False  # no persistence: a restarted server is empty

    def begin(self) -> None:
        assert self.server is not None and self.server.pid is not None
        os.kill(self.server.pid, signal.SIGKILL)
        self.server.stop()  # reaps the killed process (by pid) and removes its files

    def end(self) -> None:
        self.server = _server(self.port)


class _TimedOutage(Fault):
    """A server-side outage that ends by itself after :attr:`seconds`.

    Redis cannot end either kind early: a paused server postpones ``CLIENT UNPAUSE`` too,
    and a sleeping one runs nothing. So :meth:`begin` sends the command and then a
    ``PING`` on the same connection, whose reply marks the end of the outage:
    :attr:`in_force` peeks for it, :meth:`end` waits for it.
    """

    counter = "errors_timeout"

    def __init__(self, seconds: float = 1.0) -> None:
        super().__init__()
        self.seconds = seconds
        self._admin: socket.socket | None = None

    def _command(self) -> str:
        raise NotImplementedError

    def begin(self) -> None:
        admin = self._admin = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        command = self._command()
        admin.sendall(f"{command}\r\nPING\r\n".encode())
        if isinstance(self, PausedServer):  # CLIENT PAUSE answers before pausing
            reply = admin.recv(5)
            if reply != b"+OK\r\n":
                raise RuntimeError(f"{command!r} answered {reply!r}")
            return
        # DEBUG SLEEP answers after sleeping: return once a PING goes unanswered, so that
        # no command of the test slips in before the server has read the command.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as probe:
                probe.settimeout(0.02)
                probe.sendall(b"PING\r\n")
                try:
                    probe.recv(16)
                except TimeoutError:
                    return  # asleep
        raise RuntimeError("the server did not fall asleep")

    @property
    def in_force(self) -> bool:
        """Whether the outage is still going on (its end marker has not arrived)."""
        if self._admin is None:
            return False
        readable, _, _ = select.select([self._admin], [], [], 0)
        return not readable

    def end(self) -> None:
        admin, self._admin = self._admin, None
        if admin is None:
            return
        with admin:
            admin.settimeout(self.seconds + 5)
            expected = b"+PONG\r\n" if isinstance(self, PausedServer) else b"+OK\r\n+PONG\r\n"
            reply = b""
            while len(reply) < len(expected):
                chunk = admin.recv(64)
                if not chunk:
                    break
                reply += chunk
        if reply != expected:
            raise RuntimeError(f"the {self.name} outage ended with {reply!r}")

    def close(self) -> None:
        with contextlib.suppress(OSError, RuntimeError):
            self.end()
        super().close()


class PausedServer(_TimedOutage):
    """``CLIENT PAUSE <ms> ALL``: connections are accepted, no command is answered."""

    name = "paused"
    description = "CLIENT PAUSE ALL: connections accepted, no command answered"

    def _command(self) -> str:
        return f"CLIENT PAUSE {round(self.seconds * 1000)} ALL"


class SleepingServer(_TimedOutage):
    """``DEBUG SLEEP``: the server's only thread is busy; it answers nothing at all."""

    name = "debug-sleep"
    description = "DEBUG SLEEP: the server's one thread is busy"

    def _command(self) -> str:
        return f"DEBUG SLEEP {self.seconds}"


class BlackholedConnection(Fault):
    """A TCP proxy in front of the server stops forwarding, closing nothing."""

    name = "black-holed"
    description = "a TCP proxy stops forwarding both ways without closing"
    counter = "errors_timeout"

    def __init__(self) -> None:
        super().__init__()
        self.proxy: TcpProxy | None = None

    def start(self) -> Fault:
        super().start()
        assert self.server is not None and self.server.port is not None
        self.proxy = TcpProxy(self.server.port).start()
        self.port = self.proxy.port or 0
        return self

    def begin(self) -> None:
        assert self.proxy is not None
        self.proxy.blackhole()

    def end(self) -> None:
        assert self.proxy is not None
        self.proxy.restore()

    def close(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        super().close()


#: Every fault kind, in report order.
FAULTS: tuple[type[Fault], ...] = (
    DeadPort,
    KilledServer,
    PausedServer,
    SleepingServer,
    BlackholedConnection,
)
