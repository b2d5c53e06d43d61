"""Per-call controls for one block of code: ``with llmemo.options(...)``.

LangChain's ``BaseCache`` methods take no options, so llmemo reads them from a context
variable that every cache consults: they apply to every llmemo cache used inside the
block, in the same thread or task (and tasks it starts), sync or async::

    with llmemo.options(bypass_read=True):        # always call the model, still store
        model.invoke(prompt)
    async with llmemo.options(ttl=60, distance_threshold=0.05):
        await model.ainvoke(prompt)

Blocks nest; an inner block overrides only what it sets.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from llmemo.config import validate_distance_threshold, validate_ttl
from llmemo.errors import ConfigurationError

__all__ = ["CallOptions", "current_options", "options"]

_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class CallOptions:
    """The options in force.

    Attributes:
        bypass_read: Lookups return a miss without touching the cache.
        bypass_write: Writes are skipped.
        ttl: TTL (seconds, or ``None`` for no expiry) for entries written in the block;
            :data:`UNSET` keeps each cache's own.
        distance_threshold: Cosine-distance threshold for semantic lookups in the block,
            or ``None`` to keep each cache's own.
    """

    bypass_read: bool = False
    bypass_write: bool = False
    ttl: Any = _UNSET
    distance_threshold: float | None = None

    @property
    def has_ttl(self) -> bool:
        """Whether the block sets a TTL."""
        return self.ttl is not _UNSET


_DEFAULTS = CallOptions()
_current: contextvars.ContextVar[CallOptions] = contextvars.ContextVar(
    "llmemo_options", default=_DEFAULTS
)


def current_options() -> CallOptions:
    """The options in force in this context."""
    return _current.get()


class options:
    """Set per-call controls for a block (a sync and async context manager).

    Args:
        bypass_read: Serve no cached answer in the block (the model is called).
        bypass_write: Store nothing in the block.
        ttl: Seconds entries written in the block live (``None``: no expiry).
        distance_threshold: Cosine-distance threshold in ``[0, 2]`` for semantic lookups.

    Raises:
        ConfigurationError: a value is invalid (the message names it).
    """

    __slots__ = ("_changes", "_token")

    def __init__(
        self,
        *,
        bypass_read: bool | None = None,
        bypass_write: bool | None = None,
        ttl: Any = _UNSET,
        distance_threshold: float | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        for name, value in (("bypass_read", bypass_read), ("bypass_write", bypass_write)):
            if value is not None:
                if not isinstance(value, bool):
                    raise ConfigurationError(f"{name} must be a bool; got {value!r}")
                changes[name] = value
        if ttl is not _UNSET:
            changes["ttl"] = validate_ttl(ttl)
        if distance_threshold is not None:
            changes["distance_threshold"] = validate_distance_threshold(distance_threshold)
        self._changes = changes
        self._token: contextvars.Token[CallOptions] | None = None

    def __enter__(self) -> CallOptions:
        if self._token is not None:
            raise RuntimeError("llmemo.options(...) blocks cannot be entered twice at once")
        merged = replace(_current.get(), **self._changes)
        self._token = _current.set(merged)
        return merged

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._token is not None
        _current.reset(self._token)
        self._token = None

    async def __aenter__(self) -> CallOptions:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)
