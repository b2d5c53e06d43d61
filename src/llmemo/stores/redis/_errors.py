"""The one place where redis-py exceptions become llmemo errors.

Every Redis store wraps its driver calls in :class:`map_redis_errors` (or calls
:func:`translate` itself), so the mapping below is the whole story:

============================================================  ===============================
driver exception                                              llmemo error
============================================================  ===============================
``redis.TimeoutError``, ``asyncio.TimeoutError``,              :class:`BackendTimeoutError`
builtin ``TimeoutError``
``redis.ConnectionError`` (incl. ``BusyLoadingError``,         :class:`BackendUnavailableError`
``AuthenticationError``, ``MaxConnectionsError``), builtin
``OSError`` (refused, reset, DNS, TLS), cluster connectivity
(``RedisClusterException``, ``SlotNotCoveredError``,
``ClusterDownError``, ``MasterDownError``, ``TryAgainError``,
``ClusterError``), ``MOVED``/``ASK`` left over after the
client's redirections ran out (slots moving), ``READONLY``
replies (failover in progress)
``unknown command`` / ``unknown subcommand`` replies,          :class:`CapabilityError`
``ModuleError``
``WRONGTYPE`` replies (a key of another type)                  :class:`WrongTypeError`
any other ``RedisError`` (``OOM``, ``NOPERM``,                 :class:`BackendError`
syntax errors, ...) and cluster programming errors
(``CrossSlotTransactionError``, ``InvalidPipelineStack``)
============================================================  ===============================

The llmemo error is always raised ``from`` the driver error. Anything else passes through
untouched: llmemo's own errors (so nesting the mapper is harmless), programming errors such
as ``TypeError``, and ``asyncio.CancelledError`` (a ``BaseException``, never caught here).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

from redis import exceptions as rex

from llmemo.errors import (
    BackendError,
    BackendTimeoutError,
    BackendUnavailableError,
    CapabilityError,
    LlmemoError,
    SerializationError,
    WrongTypeError,
)

__all__ = [
    "DRIVER_ERRORS",
    "REPLY_SHAPE_ERRORS",
    "malformed_reply",
    "map_redis_errors",
    "reply_parser",
    "translate",
]

#: The exception types :class:`map_redis_errors` translates. ``RedisClusterException`` does
#: not derive from ``RedisError``; ``OSError`` covers raw socket/TLS errors that escape the
#: driver; ``asyncio.TimeoutError`` is distinct from ``TimeoutError`` before Python 3.11.
DRIVER_ERRORS: tuple[type[Exception], ...] = (
    rex.RedisError,
    rex.RedisClusterException,
    OSError,
    asyncio.TimeoutError,
)

_TIMEOUT_ERRORS: tuple[type[Exception], ...] = (
    rex.TimeoutError,
    asyncio.TimeoutError,
    TimeoutError,
)

# Cluster "errors" that are really bugs in how a command was built: retrying later or
# failing over does not help, so they are not reported as an unreachable backend.
_CLUSTER_USAGE_ERRORS: tuple[type[Exception], ...] = (
    rex.CrossSlotTransactionError,
    rex.InvalidPipelineStack,
)

# Transient states of a reachable-but-not-serving cluster or replica: same policy as an
# unreachable server (fail open, retry later).
_UNAVAILABLE_REPLY_ERRORS: tuple[type[Exception], ...] = (
    rex.ClusterDownError,  # also MasterDownError
    rex.TryAgainError,
    rex.ReadOnlyError,
    rex.AskError,  # also MovedError: redirections exhausted while slots move
)

_UNAVAILABLE_CLUSTER_ERRORS: tuple[type[Exception], ...] = (
    rex.RedisClusterException,  # e.g. no reachable startup node, slot not covered
    rex.ClusterError,  # e.g. redirections/retries exhausted
    *_UNAVAILABLE_REPLY_ERRORS,
)

_MISSING_COMMAND_MARKERS = ("unknown command", "unknown subcommand")


def _describe(exc: BaseException, operation: str, what: str) -> str:
    detail = str(exc) or type(exc).__name__
    return f"Redis {operation} {what}: {detail}"


def translate(exc: BaseException, operation: str) -> BackendError:
    """Return the llmemo error for a redis-py (or socket) exception, without raising it.

    Args:
        exc: The driver's exception (one of :data:`DRIVER_ERRORS`).
        operation: What was being done, for the message (e.g. ``"GET"``, ``"clear"``).

    Returns:
        A :class:`~llmemo.errors.BackendError` subclass instance; the caller raises it
        ``from exc``. An exception that is already a ``BackendError`` is returned as is.
    """
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, _TIMEOUT_ERRORS):
        return BackendTimeoutError(_describe(exc, operation, "timed out"))
    if isinstance(exc, rex.ConnectionError | OSError):
        return BackendUnavailableError(_describe(exc, operation, "could not reach the server"))
    if isinstance(exc, _CLUSTER_USAGE_ERRORS):
        return BackendError(_describe(exc, operation, "failed"))
    if isinstance(exc, _UNAVAILABLE_CLUSTER_ERRORS):
        return BackendUnavailableError(_describe(exc, operation, "found the server not serving"))
    if isinstance(exc, rex.ResponseError) and "WRONGTYPE" in str(exc):
        return WrongTypeError(_describe(exc, operation, "met a key of another type"))
    if isinstance(exc, rex.ModuleError) or (
        isinstance(exc, rex.ResponseError)
        and any(marker in str(exc).lower() for marker in _MISSING_COMMAND_MARKERS)
    ):
        return CapabilityError(
            _describe(exc, operation, "is not supported by this server (missing module?)")
        )
    return BackendError(_describe(exc, operation, "failed"))


# Lower-case name: it reads like a function at the call site (``with map_redis_errors(...)``).
class map_redis_errors:
    """Context manager that re-raises driver errors as llmemo errors, ``from`` the original.

    Usable as ``with map_redis_errors("GET"):`` or ``async with map_redis_errors("GET"):``;
    the sync form is enough around ``await`` expressions and is the cheaper one on hot paths.
    It never swallows an exception and never touches ``asyncio.CancelledError``.

    Args:
        operation: What is being done, for the error message (e.g. ``"GET"``).
    """

    __slots__ = ("_operation",)

    def __init__(self, operation: str) -> None:
        self._operation = operation

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # LlmemoError first: BackendUnavailableError/BackendTimeoutError are OSErrors too,
        # and an already-translated error must not be wrapped again.
        if exc is None or isinstance(exc, LlmemoError) or not isinstance(exc, DRIVER_ERRORS):
            return None
        raise translate(exc, self._operation) from exc

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


P = ParamSpec("P")
R = TypeVar("R")

#: What llmemo's reply parsers may meet in a malformed or hostile reply (a value of an
#: unexpected type or shape, bytes that are not UTF-8, a number out of range, nesting too
#: deep): each parser maps these, and only these, to :class:`SerializationError`, which
#: caches count as undecodable data (a miss), not as a backend failure.
REPLY_SHAPE_ERRORS: tuple[type[Exception], ...] = (
    TypeError,
    ValueError,  # includes UnicodeDecodeError
    LookupError,
    AttributeError,
    ArithmeticError,  # OverflowError
    RecursionError,
)


def malformed_reply(exc: BaseException, command: str) -> SerializationError:
    """The error for a ``command`` reply llmemo cannot read (raise it ``from exc``)."""
    return SerializationError(f"malformed {command} reply ({type(exc).__name__}: {exc})")


def reply_parser(command: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate a parser of ``command`` replies so that :data:`REPLY_SHAPE_ERRORS` come out
    as :class:`SerializationError` (for parsers off the hot path; hot ones map inline)."""

    def decorate(parse: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(parse)
        def parsed(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return parse(*args, **kwargs)
            except REPLY_SHAPE_ERRORS as exc:
                raise malformed_reply(exc, command) from exc

        return parsed

    return decorate
