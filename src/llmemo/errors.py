"""The one exception tree of llmemo.

Every error llmemo raises on purpose derives from :class:`LlmemoError`, so callers can
catch the library's errors in one place. Backend errors keep the driver's exception as
``__cause__`` (``raise BackendTimeoutError(...) from exc``).
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendTimeoutError",
    "BackendUnavailableError",
    "CapabilityError",
    "ConfigurationError",
    "LlmemoError",
    "MissingDependencyError",
    "SchemaMismatchError",
    "SerializationError",
    "WrongTypeError",
]


class LlmemoError(Exception):
    """Base class of every error raised by llmemo."""


class ConfigurationError(LlmemoError, ValueError):
    """A parameter has an invalid value; the message names the parameter."""


class MissingDependencyError(LlmemoError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""


class SerializationError(LlmemoError):
    """A value cannot be encoded, or stored bytes cannot be decoded."""


class BackendError(LlmemoError):
    """A store failed; ``__cause__`` holds the driver's error."""


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend cannot be reached (refused, reset, closed, DNS, TLS)."""


class BackendTimeoutError(BackendError, TimeoutError):
    """The backend did not answer within the allowed time."""


class CapabilityError(BackendError):
    """The backend lacks a feature llmemo needs (e.g. no RediSearch, no vector sets)."""


class WrongTypeError(BackendError):
    """A key under the cache's namespace holds another Redis type than the store writes.

    Bad stored data, not an outage: caches count it as an undecodable entry (a miss).
    """


class SchemaMismatchError(BackendError, ConfigurationError):
    """The index or vector set on the server does not fit this cache's vectors.

    Raised at call time when the stored RediSearch index has another schema (dimension,
    type, algorithm, ...) or a vector set another dimension or quantization than the
    vectors at hand, e.g. after a change of embedding model, or when someone else created
    an index of that name. A backend fault like any other: under ``errors="open"`` a
    lookup is a miss and a write is dropped, both counted (``errors_backend``). Also a
    :class:`ConfigurationError`, which is what an explicit ``setup()`` reports.
    """
