"""Key derivation: hashes of length-prefixed fields, namespaces and partitions.

Pure functions, no I/O. Every hash is SHA-256 over a schema tag and length-prefixed
fields, so ``("ab", "c")`` and ``("a", "bc")`` never collide, and a change of schema
changes every key (old entries then simply miss). Ids are truncated to 128 bits (32 hex
characters): collisions are negligible at any cache size and keys stay short.
"""

from __future__ import annotations

import hashlib
import re

from llmemo.errors import ConfigurationError

__all__ = [
    "ID_HEX_CHARS",
    "KEY_SCHEMA",
    "exact_key",
    "field_hash",
    "partition_id",
    "prompt_id",
    "semantic_root",
    "validate_namespace",
]

#: Version of the key layout; part of every key and of every hash input.
KEY_SCHEMA = "v1"

#: Hex characters of a partition token or prompt id (128 bits, lowercase).
ID_HEX_CHARS = 32
_ID_HEX_CHARS = ID_HEX_CHARS
_NAMESPACE_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
# Any "v<digits>" segment: today's schema and every later one (a key "a:v2:x:..." must
# never be read as namespace "a:v2" under schema v1, nor the other way round).
_SCHEMA_SEGMENT_RE = re.compile(r"v[0-9]+")


def _encode(field: str | bytes) -> bytes:
    # surrogatepass: a prompt holding a lone surrogate still hashes (injectively) instead
    # of raising deep inside a lookup.
    return field if isinstance(field, bytes) else field.encode("utf-8", "surrogatepass")


def field_hash(domain: str, *fields: str | bytes) -> str:
    """Return the SHA-256 hex digest of ``domain`` and ``fields``, each length-prefixed.

    Args:
        domain: What is being hashed (e.g. ``"partition"``); separates id kinds.
        *fields: The fields, as ``str`` (UTF-8) or ``bytes``.

    Returns:
        64 lowercase hex characters.
    """
    digest = hashlib.sha256()
    for part in (f"llmemo/{KEY_SCHEMA}/{domain}", *fields):
        data = _encode(part)
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def validate_namespace(namespace: object, *, parameter: str = "namespace") -> str:
    """Check that a namespace/prefix is 1-64 characters of ``[A-Za-z0-9_.:-]``.

    The restriction keeps namespaces free of Redis glob characters and hash-tag braces,
    and no ``:``-separated segment may look like a key schema (``v1``, ``v2``, ...), so one
    cache's ``clear()`` can never match the keys of another namespace (``a`` vs
    ``a:v1:x``), and a name is refused here rather than by every later call.

    Raises:
        ConfigurationError: naming ``parameter`` when the value is not acceptable.
    """
    if not isinstance(namespace, str) or not _NAMESPACE_RE.fullmatch(namespace):
        raise ConfigurationError(
            f"{parameter} must be 1-64 characters of letters, digits, '_', '.', ':' or '-'; "
            f"got {namespace!r}"
        )
    if any(_SCHEMA_SEGMENT_RE.fullmatch(segment) for segment in namespace.split(":")):
        raise ConfigurationError(
            f"{parameter} may not contain a ':'-separated segment like {KEY_SCHEMA!r} "
            f"(reserved for llmemo's key layout); got {namespace!r}"
        )
    return namespace


def semantic_root(prefix: object, name: object) -> str:
    """Return the key root of a semantic cache named ``name`` under ``prefix``.

    ``prefix`` when ``name == prefix`` (langchain-redis' default, both ``"llmcache"``),
    else ``{prefix}:{name}``. ``name`` may not contain ``:``, so the root is injective:
    ``("t", "a:x")`` and ``("t:a", "x")`` can never share keys (the last segment is the
    name, the rest the prefix), and a root of one segment is always a ``name == prefix``
    cache.

    Raises:
        ConfigurationError: naming ``prefix`` or ``name``.
    """
    validate_namespace(prefix, parameter="prefix")
    validate_namespace(name, parameter="name")
    assert isinstance(prefix, str) and isinstance(name, str)
    if ":" in name:
        raise ConfigurationError(
            "name may not contain ':' (a name with ':' would share keys with another "
            f"prefix, e.g. ('t', 'a:x') and ('t:a', 'x')); got {name!r}"
        )
    root = prefix if name == prefix else f"{prefix}:{name}"
    return validate_namespace(root, parameter="prefix:name")


def partition_id(namespace: str, llm_string: str, context: str = "") -> str:
    """Return the partition token of a (namespace, model configuration, context) triple.

    Entries of different partitions never match each other: the partition is the
    pre-filter of every vector query. ``context`` is everything of the prompt that is not
    embedded (system prompt, earlier turns, non-text parts).
    """
    return field_hash("partition", namespace, llm_string, context)[:_ID_HEX_CHARS]


def prompt_id(prompt: str) -> str:
    """Return the id of a whole prompt (used for exact matches)."""
    return field_hash("prompt", prompt)[:_ID_HEX_CHARS]


def exact_key(namespace: str, partition: str, prompt: str) -> str:
    """Return the key-store key of an exact entry: ``{ns}:v1:x:{partition}:{prompt_id}``."""
    return f"{namespace}:{KEY_SCHEMA}:x:{partition}:{prompt_id(prompt)}"
