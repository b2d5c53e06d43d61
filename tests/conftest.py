"""Shared test fixtures.

Redis section: the session starts one throwaway Redis 8 (RediSearch + ReJSON + vector sets,
see ``tests/redis_server.py``) the first time a test asks for ``redis_url``, unless
``LLMEMO_REDIS_URL`` points at a server to use instead. Tests that need a capability carry
the ``redisearch`` / ``vectorset`` marker: they are skipped when the server lacks it, or fail
when ``CI`` is set (a CI run must not silently skip them). Tests marked ``cluster`` get a
throwaway 3-primary Redis Cluster from ``redis_cluster_url`` (or ``LLMEMO_REDIS_CLUSTER_URL``).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from redis_server import (
    RedisCapabilities,
    RedisClusterServer,
    RedisServer,
    probe_capabilities,
)

# ---------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------

# Markers that name a server capability, mapped to the RedisCapabilities flag they need.
CAPABILITY_MARKERS = {"redisearch": "search", "vectorset": "vectorset"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A test that needs a Redis capability needs Redis, so `-m redis` selects it too.
    for item in items:
        if any(item.get_closest_marker(name) for name in CAPABILITY_MARKERS) and (
            item.get_closest_marker("redis") is None
        ):
            item.add_marker(pytest.mark.redis)


def check_capability(capabilities: RedisCapabilities, name: str) -> None:
    """Skip the running test if the server lacks capability ``name``; fail instead in CI.

    Args:
        capabilities: What the session's server offers.
        name: ``"redisearch"``/``"search"``, ``"vectorset"`` or ``"json"``.
    """
    if capabilities.has(name):
        return
    reason = f"Redis server lacks capability {name!r} (modules: {capabilities.modules or 'none'})"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI is set, so a missing capability is a failure", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer | None]:
    """The session's own Redis server, or ``None`` when ``LLMEMO_REDIS_URL`` is used.

    Started on first use and stopped (by pid) at the end of the session.
    """
    if os.environ.get("LLMEMO_REDIS_URL"):
        yield None
        return
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(redis_server: RedisServer | None) -> str:
    """URL of the Redis server the tests use (``LLMEMO_REDIS_URL`` or the session's own)."""
    if redis_server is None:
        return os.environ["LLMEMO_REDIS_URL"]
    return redis_server.url


@pytest.fixture(scope="session")
def redis_capabilities(redis_server: RedisServer | None, redis_url: str) -> RedisCapabilities:
    """What the server can do, probed once per session."""
    if redis_server is not None:
        return redis_server.capabilities
    return probe_capabilities(redis_url)


@pytest.fixture
def require_capability(
    redis_capabilities: RedisCapabilities,
) -> Callable[[str], None]:
    """A callable ``require_capability(name)``: skip (or fail in CI) when ``name`` is missing."""

    def require(name: str) -> None:
        check_capability(redis_capabilities, name)

    return require


@pytest.fixture(autouse=True)
def _redis_capability_markers(request: pytest.FixtureRequest) -> None:
    # Looked up lazily, so that tests without these markers never start a server. A test
    # marked `cluster` needs the capability on the cluster's nodes, not on the standalone.
    names = [name for name in CAPABILITY_MARKERS if request.node.get_closest_marker(name)]
    if names:
        fixture = (
            "redis_cluster_capabilities"
            if request.node.get_closest_marker("cluster")
            else "redis_capabilities"
        )
        capabilities: RedisCapabilities = request.getfixturevalue(fixture)
        for name in names:
            check_capability(capabilities, name)


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer | None]:
    """The session's own 3-primary Redis Cluster (RediSearch loaded in every node), or
    ``None`` when ``LLMEMO_REDIS_CLUSTER_URL`` is used.

    Started on first use (2-3 s) and stopped by pid at the end of the session. Tests may
    move slots between its primaries but must give them back.
    """
    if os.environ.get("LLMEMO_REDIS_CLUSTER_URL"):
        yield None
        return
    cluster = RedisClusterServer(masters=3, modules=True).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster_url(redis_cluster: RedisClusterServer | None) -> str:
    """A startup-node URL of a Redis Cluster, for tests marked ``cluster``.

    ``LLMEMO_REDIS_CLUSTER_URL`` if set; otherwise the session's own cluster.
    """
    if redis_cluster is None:
        return os.environ["LLMEMO_REDIS_CLUSTER_URL"]
    return redis_cluster.url


@pytest.fixture(scope="session")
def redis_cluster_capabilities(
    redis_cluster: RedisClusterServer | None, redis_cluster_url: str
) -> RedisCapabilities:
    """What the cluster's nodes can do (probed on one node, once per session)."""
    if redis_cluster is not None:
        return redis_cluster.capabilities
    return probe_capabilities(redis_cluster_url)


@pytest.fixture
def failover_cluster() -> Iterator[RedisClusterServer]:
    """A fresh 3-primary + 3-replica cluster for one test that may kill its nodes.

    ``cluster-node-timeout`` 1000 ms (a failover takes about 2 s) and
    ``cluster-require-full-coverage no`` (the shards that are up keep serving while a
    failed primary's slots wait for its replica). RediSearch is loaded. Always started
    here (never ``LLMEMO_REDIS_CLUSTER_URL``: the test kills processes); stopped by pid.
    """
    cluster = RedisClusterServer(
        masters=3,
        replicas=1,
        modules=True,
        node_timeout_ms=1000,
        require_full_coverage=False,
    ).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def unique_prefix() -> str:
    """A fresh namespace for one test, ``t-<16 hex>``; the test cleans only under it."""
    return f"t-{secrets.token_hex(8)}"


# ---------------------------------------------------------------------------------------
# Other shared fixtures (owned by the lead) go below this line.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def local_embeddings() -> Iterator[Any]:
    """The real all-MiniLM-L6-v2 model (``llmemo.local.LocalEmbeddings``), loaded once per
    session; tests using it carry the ``model`` marker."""
    from llmemo.local import LocalEmbeddings

    embeddings = LocalEmbeddings()
    embeddings.load()
    yield embeddings
