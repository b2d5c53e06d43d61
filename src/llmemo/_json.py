"""The fast JSON parser, when one is installed."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

__all__ = ["fast_dumps", "fast_loads"]


@functools.cache
def fast_loads() -> Callable[[bytes | str], Any] | None:
    """``orjson.loads`` if orjson is importable, else ``None`` (callers use the stdlib).

    orjson parses several times faster than the stdlib; it is usually installed
    (langsmith, a langchain-core dependency, requires it on CPython) but llmemo does not
    require it. Callers fall back to the stdlib for what it refuses.
    """
    try:
        import orjson
    except ImportError:
        return None
    return orjson.loads


@functools.cache
def fast_dumps() -> Callable[[Any], bytes] | None:
    """``orjson.dumps`` if orjson is importable, else ``None`` (callers use the stdlib).

    Its output is compact JSON with keys in insertion order; callers fall back to the
    stdlib for what it refuses (e.g. integers beyond 64 bits).
    """
    try:
        import orjson
    except ImportError:
        return None
    dumps: Callable[[Any], bytes] = orjson.dumps
    return dumps
