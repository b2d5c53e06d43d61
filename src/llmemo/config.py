"""Validated, frozen configuration and the validators shared by every public constructor.

Every check raises :class:`~llmemo.errors.ConfigurationError` naming the parameter and
the value it got. Units are in the names or the docstrings: TTLs in seconds, thresholds
as cosine distance in ``[0, 2]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmemo.errors import ConfigurationError
from llmemo.keys import validate_namespace

__all__ = [
    "DEFAULT_EMBEDDING_MEMO_BYTES",
    "MAX_DISTANCE",
    "CacheConfig",
    "SemanticConfig",
    "validate_distance_threshold",
    "validate_optional_positive_int",
    "validate_positive_seconds",
    "validate_ttl",
]

#: The largest cosine distance (opposite vectors).
MAX_DISTANCE = 2.0


def _is_real_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_ttl(ttl: object, *, parameter: str = "ttl") -> float | None:
    """Return ``ttl`` as seconds (``float``), or ``None`` for "no expiry".

    Raises:
        ConfigurationError: ``ttl`` is not ``None`` or a finite number > 0.
    """
    if ttl is None:
        return None
    if not _is_real_number(ttl) or not math.isfinite(ttl) or ttl <= 0:  # type: ignore[arg-type,operator]
        raise ConfigurationError(
            f"{parameter} must be None or a finite number of seconds > 0; got {ttl!r}"
        )
    return float(ttl)  # type: ignore[arg-type]


def validate_distance_threshold(
    threshold: object, *, parameter: str = "distance_threshold"
) -> float:
    """Return a cosine-distance threshold, checked to lie in ``[0, 2]``.

    Raises:
        ConfigurationError: the value is not a number in ``[0, 2]``.
    """
    if (
        not _is_real_number(threshold)
        or not math.isfinite(threshold)  # type: ignore[arg-type]
        or not 0.0 <= threshold <= MAX_DISTANCE  # type: ignore[operator]
    ):
        raise ConfigurationError(
            f"{parameter} must be a cosine distance in [0, 2] (0 = identical); got {threshold!r}"
        )
    return float(threshold)  # type: ignore[arg-type]


def validate_positive_seconds(value: object, parameter: str) -> float:
    """Return ``value`` as seconds after checking it is a finite number > 0.

    Raises:
        ConfigurationError: naming ``parameter`` otherwise.
    """
    if (
        not _is_real_number(value)
        or not math.isfinite(value)  # type: ignore[arg-type]
        or value <= 0  # type: ignore[operator]
    ):
        raise ConfigurationError(
            f"{parameter} must be a finite number of seconds > 0; got {value!r}"
        )
    return float(value)  # type: ignore[arg-type]


def validate_optional_positive_int(value: object, *, parameter: str) -> int | None:
    """Return ``value`` if it is ``None`` or an ``int`` > 0.

    Raises:
        ConfigurationError: otherwise.
    """
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigurationError(f"{parameter} must be None or an integer > 0; got {value!r}")
    return value


#: RediSearch index algorithms and vector types, as ``FT.CREATE`` names them. They live
#: here so that the LangChain drop-in checks its arguments with the store's own lists
#: without importing the store (numpy, redis) at construction.
REDISEARCH_ALGORITHMS = ("HNSW", "FLAT")
REDISEARCH_VECTOR_TYPES = ("FLOAT32", "FLOAT16", "FLOAT64")


def validate_choice(value: object, choices: tuple[str, ...], *, parameter: str) -> str:
    """Return ``value`` upper-cased if it names one of ``choices`` (any case).

    Raises:
        ConfigurationError: ``value`` is not a string naming one of ``choices``.
    """
    if not isinstance(value, str) or value.upper() not in choices:
        raise ConfigurationError(
            f"{parameter} must be one of {', '.join(map(repr, choices))}; got {value!r}"
        )
    return value.upper()


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """Settings of an exact cache.

    Attributes:
        namespace: Prefix of every key (1-64 of ``[A-Za-z0-9_.:-]``); ``clear()`` removes
            exactly this namespace.
        ttl: Default seconds an entry lives, or ``None`` for no expiry.
    """

    namespace: str = "llmemo"
    ttl: float | None = None

    def __post_init__(self) -> None:
        validate_namespace(self.namespace)
        object.__setattr__(self, "ttl", validate_ttl(self.ttl))


#: Default ``embedding_memo_bytes`` of a semantic cache: 32 MiB (1,024 vectors of 3,072
#: float64 dimensions with their texts fit in about 25 MiB).
DEFAULT_EMBEDDING_MEMO_BYTES = 32 * 2**20


@dataclass(frozen=True, slots=True)
class SemanticConfig:
    """Settings of a semantic cache.

    Attributes:
        namespace: Namespace hashed into every partition and entry.
        ttl: Default seconds an entry lives, or ``None``.
        distance_threshold: Largest cosine distance (``[0, 2]``) that still counts as a
            hit; a distance equal to the threshold hits.
        embedding_memo_size: How many recent ``text → vector`` results to keep, so a
            miss followed by its update embeds the prompt once (0 disables).
        embedding_memo_bytes: Most bytes those results (texts and vectors) may hold
            together; as many again for the verifier signatures memoised beside them.
    """

    namespace: str = "llmemo"
    ttl: float | None = None
    distance_threshold: float = 0.2
    embedding_memo_size: int = 1024
    embedding_memo_bytes: int = DEFAULT_EMBEDDING_MEMO_BYTES

    def __post_init__(self) -> None:
        validate_namespace(self.namespace)
        object.__setattr__(self, "ttl", validate_ttl(self.ttl))
        object.__setattr__(
            self, "distance_threshold", validate_distance_threshold(self.distance_threshold)
        )
        size = self.embedding_memo_size
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ConfigurationError(f"embedding_memo_size must be an integer >= 0; got {size!r}")
        memo_bytes = validate_optional_positive_int(
            self.embedding_memo_bytes, parameter="embedding_memo_bytes"
        )
        if memo_bytes is None:
            raise ConfigurationError("embedding_memo_bytes must be an integer > 0; got None")
