"""What the suite counts besides latency: round trips, server time, memory, import time,
and redis-benchmark's own figures."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

# -- round trips (client side) -----------------------------------------------------------


def command_names(packed: Any) -> list[str]:
    """Names of the RESP commands in one packed write (one command or a pipeline)."""
    if isinstance(packed, str):
        data = packed.encode()
    elif isinstance(packed, bytes | bytearray | memoryview):
        data = bytes(packed)
    else:
        data = b"".join(bytes(chunk) for chunk in packed)
    names: list[str] = []
    pos = 0
    while pos < len(data) and data[pos : pos + 1] == b"*":
        end = data.index(b"\r\n", pos)
        count = int(data[pos + 1 : end])
        pos = end + 2
        for arg in range(count):
            end = data.index(b"\r\n", pos)
            size = int(data[pos + 1 : end])
            start = end + 2
            if arg == 0:
                names.append(data[start : start + size].decode("latin-1").upper())
            pos = start + size + 2
    return names


@dataclass
class RoundTrips:
    """Writes to Redis sockets by redis-py (sync and asyncio) between :meth:`start` and
    :meth:`stop`.

    redis-py's send is patched only for that window: a patched send is a hook llmemo
    must honour (it then sends through it, see ``llmemo.stores.redis._common._send``),
    so timed sections must run without it.
    """

    sends: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    active: bool = False
    _patch: contextlib.ExitStack | None = field(default=None, repr=False)

    def start(self) -> None:
        """Reset the counts and count every send from now on."""
        self.stop()
        self.reset()
        patch = contextlib.ExitStack()
        patch.enter_context(self.installed())
        self._patch = patch
        self.active = True

    def stop(self) -> None:
        """Stop counting and restore redis-py's send."""
        self.active = False
        if self._patch is not None:
            self._patch.close()
            self._patch = None

    @contextlib.contextmanager
    def installed(self) -> Iterator[RoundTrips]:
        """Patch redis-py's ``send_packed_command`` (both faces) for the duration."""
        import redis.asyncio.connection as aconn
        import redis.connection as sconn

        sync_send = sconn.AbstractConnection.send_packed_command
        async_send = aconn.AbstractConnection.send_packed_command
        probe = self

        def counted_sync(conn: Any, command: Any, check_health: bool = True) -> Any:
            if probe.active:
                probe.record(command)
            return sync_send(conn, command, check_health)

        async def counted_async(conn: Any, command: Any, check_health: bool = True) -> Any:
            if probe.active:
                probe.record(command)
            return await async_send(conn, command, check_health)

        sconn.AbstractConnection.send_packed_command = counted_sync  # type: ignore[method-assign]
        aconn.AbstractConnection.send_packed_command = counted_async  # type: ignore[method-assign]
        try:
            yield self
        finally:
            sconn.AbstractConnection.send_packed_command = sync_send  # type: ignore[method-assign]
            aconn.AbstractConnection.send_packed_command = async_send  # type: ignore[method-assign]

    def record(self, command: Any) -> None:
        self.sends += 1
        self.commands.update(command_names(command))

    def reset(self) -> None:
        self.sends = 0
        self.commands = Counter()


# -- server side --------------------------------------------------------------------------


def commandstats(client: Any) -> dict[str, tuple[int, float]]:
    """``INFO commandstats`` as ``{command: (calls, usec)}`` (lower-case names)."""
    info = client.info("commandstats")
    out: dict[str, tuple[int, float]] = {}
    for key, value in info.items():
        name = key.removeprefix("cmdstat_")
        out[name.lower()] = (int(value["calls"]), float(value["usec"]))
    return out


def stats_delta(
    before: dict[str, tuple[int, float]], after: dict[str, tuple[int, float]]
) -> dict[str, tuple[int, float]]:
    """Calls and microseconds per command between two :func:`commandstats`, minus INFO."""
    out = {}
    for name, (calls, usec) in after.items():
        old_calls, old_usec = before.get(name, (0, 0.0))
        if calls > old_calls and name != "info":
            out[name] = (calls - old_calls, usec - old_usec)
    return out


def server_usec(delta: dict[str, tuple[int, float]], top_level: Counter[str]) -> float:
    """Server microseconds of the commands the client sent (``top_level``).

    Commands run by scripts are counted by the server too, and their time is already in
    the script's; so a command's time is taken in proportion of its client-sent calls.
    """
    total = 0.0
    for name, sent in top_level.items():
        calls, usec = delta.get(name.lower(), (0, 0.0))
        if calls:
            total += usec * min(1.0, sent / calls)
    return total


def used_memory(client: Any) -> int:
    """``used_memory`` from ``INFO memory`` (bytes)."""
    return int(client.info("memory")["used_memory"])


async def wait_indexed(raw: Any, index: str) -> None:
    """Wait (up to 120 s) until RediSearch has indexed every document of ``index``
    (``raw``: a ``redis.asyncio`` client)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        info = await raw.execute_command("FT.INFO", index)
        if isinstance(info, list):
            info = dict(zip(info[::2], info[1::2], strict=False))
        info = {(k.decode() if isinstance(k, bytes) else k): v for k, v in info.items()}
        if int(info.get("indexing", 0)) == 0:
            return
        await asyncio.sleep(0.2)


# -- imports -----------------------------------------------------------------------------

_IMPORTTIME = re.compile(r"import time:\s+(\d+)\s+\|\s+(\d+)\s+\|(\s*)(\S+)")


def _import_run(statement: str) -> tuple[float, float]:
    """(sum of top-level cumulative -X importtime µs, wall seconds) of one fresh process."""
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", statement],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    wall = time.perf_counter() - start
    total = 0
    for line in result.stderr.splitlines():
        match = _IMPORTTIME.match(line)
        if match and len(match.group(3)) == 1:  # depth 0: one space before the name
            total += int(match.group(2))
    return total, wall


def import_times(modules: list[str], runs: int) -> dict[str, dict[str, float]]:
    """Median import cost per module over ``runs`` fresh interpreters, interleaved.

    ``importtime_ms`` is the ``-X importtime`` cumulative time of the ``import`` statement
    (interpreter start-up imports subtracted); ``wall_ms`` the process wall time minus
    that of ``python -c pass`` (both with ``-X importtime``, which itself costs a little).
    """
    samples: dict[str, list[tuple[float, float]]] = {m: [] for m in ["", *modules]}
    for _ in range(runs):
        for module in samples:
            samples[module].append(_import_run(f"import {module}" if module else "pass"))
    base_it = statistics.median(s[0] for s in samples[""])
    base_wall = statistics.median(s[1] for s in samples[""])
    return {
        module: {
            "importtime_ms": (statistics.median(s[0] for s in samples[module]) - base_it) / 1000,
            "wall_ms": (statistics.median(s[1] for s in samples[module]) - base_wall) * 1000,
        }
        for module in modules
    }


# -- redis-benchmark ---------------------------------------------------------------------


def redis_benchmark_path() -> str | None:
    """A working ``redis-benchmark`` on PATH, or ``None``."""
    path = shutil.which("redis-benchmark")
    if path is None:
        return None
    try:
        subprocess.run([path, "--version"], capture_output=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return path


def redis_benchmark(
    path: str, url: str, key: str, clients: int, requests: int
) -> dict[str, float] | None:
    """``redis-benchmark … GET key``: requests/s and p50 latency (µs); None if unusable."""
    parts = urlparse(url)
    if parts.scheme != "redis" or parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None  # loopback, plain TCP only
    cmd = [path, "-h", parts.hostname, "-p", str(parts.port or 6379), "-n", str(requests)]
    cmd += ["-c", str(clients), "--csv"]
    if parts.password:
        cmd += ["-a", parts.password, "--no-auth-warning"]
        if parts.username:
            cmd += ["--user", parts.username]
    db = (parts.path or "/0").lstrip("/") or "0"
    cmd += ["--dbnum", db, "GET", key]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    if len(lines) < 2:
        return None
    header = [h.strip('"') for h in lines[0].split(",")]
    values = [v.strip('"') for v in lines[-1].split(",")]
    row = dict(zip(header, values, strict=False))
    try:
        return {
            "rps": float(row["rps"]),
            "p50_us": float(row["p50_latency_ms"]) * 1000,
            "avg_us": float(row["avg_latency_ms"]) * 1000,
        }
    except (KeyError, ValueError):
        return None
