"""The stored format of cache entries: a versioned JSON envelope, never pickle.

An entry is UTF-8 JSON::

    {"v": 1, "t": <written at, unix seconds>, "k": "lc" | "json", "d": <data>,
     "s": <optional verifier signature: a JSON object>}

* ``"lc"``: a list of LangChain generations, encoded field by field and rebuilt only
  from an explicit allow-list of classes (``Generation``, ``GenerationChunk``,
  ``ChatGeneration``, ``ChatGenerationChunk``; messages ``AIMessage``,
  ``AIMessageChunk``, ``ChatMessage``). Nothing in the bytes can name another class.
* ``"json"``: any JSON value, for users of the core API without LangChain (tuples come
  back as lists).

Decoding is strict: anything unexpected raises :class:`~llmemo.errors.SerializationError`,
which caches turn into a (counted) miss. LangChain is imported only when a LangChain
value is encoded or decoded.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmemo._json import fast_loads
from llmemo.errors import SerializationError

if TYPE_CHECKING:
    from langchain_core.outputs import Generation

__all__ = ["CODEC_VERSION", "DecodedEntry", "decode", "encode", "encode_generations"]

#: Version of the envelope written by :func:`encode`; other versions decode as errors.
CODEC_VERSION = 1

# orjson turns integers beyond 64 bits into floats instead of failing. Entries whose JSON
# has a run of 19+ digits (a superset of such integers) start with this mark and are
# parsed by the stdlib, which keeps them exact; scanning is done once, at write time.
_LONG_DIGITS = re.compile(r"[0-9]{19}")
_VERSION_PREFIX = f'{{"v":{CODEC_VERSION},'
_STDLIB_MARK = f'{_VERSION_PREFIX}"n":1,'.encode()

_GENERATION_KINDS = ("Generation", "GenerationChunk", "ChatGeneration", "ChatGenerationChunk")
_MESSAGE_KINDS = ("AIMessage", "AIMessageChunk", "ChatMessage")


@dataclass(frozen=True, slots=True)
class DecodedEntry:
    """A decoded entry.

    Attributes:
        value: A ``list`` of LangChain generations, or the JSON value stored.
        written_at: When the entry was written (unix seconds).
        signature: The hit verifier's signature stored with the entry, if any.
    """

    value: Any
    written_at: float
    signature: dict[str, Any] | None = None


def _dumps(envelope: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(envelope, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"value is not JSON-serializable: {exc}") from exc
    except RecursionError as exc:
        raise SerializationError("value is nested too deep to encode") from exc
    if _LONG_DIGITS.search(text):
        # Mark entries that may hold integers beyond 64 bits (orjson would read them as
        # floats): the mark sits right after the version, where decode() checks for it.
        assert text.startswith(_VERSION_PREFIX)  # "v" is always the envelope's first key
        text = _STDLIB_MARK.decode() + text[len(_VERSION_PREFIX) :]
    # surrogatepass keeps any str Python can hold round-trippable.
    return text.encode("utf-8", "surrogatepass")


@functools.cache
def _message_classes() -> dict[str, type[Any]]:
    from langchain_core.messages import AIMessage, AIMessageChunk, ChatMessage

    return {"AIMessage": AIMessage, "AIMessageChunk": AIMessageChunk, "ChatMessage": ChatMessage}


@functools.cache
def _generation_classes() -> dict[str, type[Any]]:
    from langchain_core.outputs import (
        ChatGeneration,
        ChatGenerationChunk,
        Generation,
        GenerationChunk,
    )

    return {
        "Generation": Generation,
        "GenerationChunk": GenerationChunk,
        "ChatGeneration": ChatGeneration,
        "ChatGenerationChunk": ChatGenerationChunk,
    }


def _encode_generation(generation: Any, index: int) -> dict[str, Any]:
    kind = type(generation).__name__
    if kind not in _GENERATION_KINDS or type(generation) is not _generation_classes()[kind]:
        raise TypeError(
            f"return_val[{index}] must be a langchain_core Generation, GenerationChunk, "
            f"ChatGeneration or ChatGenerationChunk; got {type(generation).__qualname__}"
        )
    item: dict[str, Any] = {"c": kind, "i": generation.generation_info}
    if kind.startswith("Chat"):
        message = generation.message
        message_kind = type(message).__name__
        if (
            message_kind not in _MESSAGE_KINDS
            or type(message) is not _message_classes()[message_kind]
        ):
            raise TypeError(
                f"return_val[{index}].message must be an AIMessage, AIMessageChunk or "
                f"ChatMessage; got {type(message).__qualname__}"
            )
        item["m"] = {"c": message_kind, "f": message.model_dump()}
    else:
        item["x"] = generation.text
    return item


def _envelope(
    kind: str, data: Any, written_at: float, signature: dict[str, Any] | None
) -> dict[str, Any]:
    envelope = {"v": CODEC_VERSION, "t": written_at, "k": kind, "d": data}
    if signature is not None:
        envelope["s"] = signature
    return envelope


def encode_generations(
    generations: Sequence[Generation],
    *,
    written_at: float,
    signature: dict[str, Any] | None = None,
) -> bytes:
    """Encode a sequence of LangChain generations (order kept) as an entry.

    Raises:
        TypeError: ``generations`` is not a sequence of allow-listed generation classes
            (the message names ``return_val`` and the index).
        SerializationError: a field (e.g. in ``response_metadata``) is not JSON data.
    """
    if isinstance(generations, (str, bytes)) or not isinstance(generations, Sequence):
        raise TypeError(
            "return_val must be a list of langchain_core Generation objects; "
            f"got {type(generations).__qualname__}"
        )
    data = [_encode_generation(g, i) for i, g in enumerate(generations)]
    return _dumps(_envelope("lc", data, written_at, signature))


def encode(value: Any, *, written_at: float, signature: dict[str, Any] | None = None) -> bytes:
    """Encode any cacheable value as an entry.

    A non-empty list/tuple whose items are all LangChain ``Generation`` objects is encoded
    as LangChain generations; anything else must be JSON data.

    Args:
        value: The value to cache.
        written_at: Unix seconds, stored to report an entry's age.
        signature: A hit verifier's JSON signature to store with the entry.

    Raises:
        SerializationError: the value is not JSON data (or holds NaN/inf).
    """
    if isinstance(value, (list, tuple)) and value and _looks_like_generations(value):
        return encode_generations(value, written_at=written_at, signature=signature)
    return _dumps(_envelope("json", value, written_at, signature))


def _looks_like_generations(value: Sequence[Any]) -> bool:
    # Avoids importing LangChain for plain JSON values: check the class names first.
    if not all(type(item).__name__ in _GENERATION_KINDS for item in value):
        return False
    from langchain_core.outputs import Generation

    return all(isinstance(item, Generation) for item in value)


def _fail(reason: str) -> SerializationError:
    return SerializationError(f"undecodable cache entry: {reason}")


def _decode_generation(item: Any) -> Any:
    if not isinstance(item, dict):
        raise _fail("generation is not an object")
    kind = item.get("c")
    if kind not in _GENERATION_KINDS:
        raise _fail(f"generation class {kind!r} is not allowed")
    info = item.get("i")
    if info is not None and not isinstance(info, dict):
        raise _fail("generation_info is not an object")
    cls = _generation_classes()[kind]
    if not kind.startswith("Chat"):
        text = item.get("x")
        if not isinstance(text, str):
            raise _fail("generation text is not a string")
        return cls(text=text, generation_info=info)
    message = item.get("m")
    if not isinstance(message, dict) or not isinstance(message.get("f"), dict):
        raise _fail("chat generation without a message")
    message_kind = message.get("c")
    if message_kind not in _MESSAGE_KINDS:
        raise _fail(f"message class {message_kind!r} is not allowed")
    if message_kind == "AIMessage":
        message_obj = _ai_message(message["f"])
        if kind == "ChatGeneration" and isinstance(message_obj.content, str):
            layout = _fast_layout()
            if layout is not None:
                return layout.chat_generation(message_obj, info)
    else:
        message_obj = _message_classes()[message_kind].model_validate(message["f"])
    return cls(message=message_obj, generation_info=info)


@functools.cache
def _ai_message_fields() -> frozenset[str]:
    return frozenset(_message_classes()["AIMessage"].model_fields)


def _is_optional_str(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _ai_message(fields: dict[str, Any]) -> Any:
    """Rebuild an ``AIMessage`` from the fields :func:`encode` wrote, checking each field's
    shape here and skipping pydantic's (much slower) validation of the same data: the hot
    path of every LangChain chat hit. Anything unexpected raises SerializationError."""
    cls = _message_classes()["AIMessage"]
    if not fields.keys() <= _ai_message_fields() or fields.get("type", "ai") != "ai":
        raise _fail("AIMessage fields are not AIMessage's")
    content = fields.get("content", "")
    if not isinstance(content, str) and not (
        isinstance(content, list) and all(isinstance(b, (str, dict)) for b in content)
    ):
        raise _fail("AIMessage content is neither text nor a list of blocks")
    for name in ("additional_kwargs", "response_metadata"):
        if not isinstance(fields.get(name, {}), dict):
            raise _fail(f"AIMessage {name} is not an object")
    if not (_is_optional_str(fields.get("name")) and _is_optional_str(fields.get("id"))):
        raise _fail("AIMessage name/id is not text")
    for name in ("tool_calls", "invalid_tool_calls"):
        calls = fields.get(name, [])
        if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
            raise _fail(f"AIMessage {name} is not a list of objects")
    for call in fields.get("tool_calls", []):
        if not (
            isinstance(call.get("name"), str)
            and isinstance(call.get("args"), dict)
            and _is_optional_str(call.get("id"))
        ):
            raise _fail("a tool call lacks a name, args or id")
    usage = fields.get("usage_metadata")
    if usage is not None and not (
        isinstance(usage, dict)
        and all(isinstance(usage.get(k), int) for k in ("input_tokens", "output_tokens"))
    ):
        raise _fail("AIMessage usage_metadata is malformed")
    layout = _fast_layout()
    if layout is not None and len(fields) == len(_ai_message_fields()):
        return layout.ai_message(fields)  # every field present, as encode() writes them
    return cls.model_construct(**fields)


class _FastLayout:
    """Builds ``AIMessage`` (from a dict of *every* field, which becomes its state) and
    ``ChatGeneration`` objects by setting pydantic's instance state directly (what
    ``model_construct`` does, without its per-field loop): ~4 us of a ~20 us decode on
    every chat hit. Used only after :func:`_fast_layout` has checked,
    once per process, that the objects it builds equal those the public constructors
    build for the installed pydantic and LangChain."""

    def __init__(self, message_cls: type[Any], generation_cls: type[Any]) -> None:
        self._message_cls = message_cls
        self._generation_cls = generation_cls

    def ai_message(self, fields: dict[str, Any]) -> Any:
        message = object.__new__(self._message_cls)
        _set = object.__setattr__
        _set(message, "__dict__", fields)
        _set(message, "__pydantic_fields_set__", set(fields))
        _set(message, "__pydantic_extra__", {})
        _set(message, "__pydantic_private__", None)
        return message

    def chat_generation(self, message: Any, info: dict[str, Any] | None) -> Any:
        generation = object.__new__(self._generation_cls)
        _set = object.__setattr__
        state = {"text": message.content, "generation_info": info, "type": "ChatGeneration"}
        state["message"] = message
        _set(generation, "__dict__", state)
        _set(generation, "__pydantic_fields_set__", {"text", "generation_info", "message"})
        _set(generation, "__pydantic_extra__", None)
        _set(generation, "__pydantic_private__", None)
        return generation


@functools.cache
def _fast_layout() -> _FastLayout | None:
    """The fast builder, if it builds exactly what the constructors build here."""
    from langchain_core.outputs import ChatGeneration

    message_cls = _message_classes()["AIMessage"]
    try:
        if message_cls.__private_attributes__ or ChatGeneration.__private_attributes__:
            return None
        reference = message_cls(
            content="probe",
            response_metadata={"model_name": "m"},
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
            id="probe-id",
        )
        fields = reference.model_dump()
        layout = _FastLayout(message_cls, ChatGeneration)
        for kept in (fields, {**fields, "tool_calls": [], "id": None}):
            fast = layout.ai_message(dict(kept))
            slow = message_cls.model_construct(**kept)
            if fast != slow or fast.__pydantic_fields_set__ != slow.__pydantic_fields_set__:
                return None
            if fast.__pydantic_extra__ != slow.__pydantic_extra__:
                return None
            fast_generation = layout.chat_generation(fast, {"finish_reason": "stop"})
            slow_generation = ChatGeneration(
                message=slow, generation_info={"finish_reason": "stop"}
            )
            if (
                fast_generation != slow_generation
                or fast_generation.model_dump() != slow_generation.model_dump()
                or fast_generation.__pydantic_fields_set__
                != slow_generation.__pydantic_fields_set__
            ):
                return None
    except Exception:  # any surprise in another pydantic/LangChain: the slow, public way
        return None
    return layout


def _parse(payload: bytes) -> Any:
    fast = fast_loads()
    if fast is not None and not payload.startswith(_STDLIB_MARK):
        try:
            return fast(payload)
        except ValueError:
            # orjson refuses what the stdlib accepts here (encoded lone surrogates, deep
            # nesting): let the stdlib decide.
            pass
    try:
        return json.loads(payload.decode("utf-8", "surrogatepass"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail("not UTF-8 JSON") from exc


#: What hostile or foreign data can make decoding raise past the checks below (a number too
#: large for a float, nesting deeper than the recursion limit, a value of an unexpected
#: type met by LangChain's constructors): mapped to SerializationError at one boundary.
_DATA_ERRORS = (TypeError, ValueError, LookupError, ArithmeticError, RecursionError)


def decode(payload: bytes) -> DecodedEntry:
    """Decode an entry written by :func:`encode` or :func:`encode_generations`.

    Raises:
        SerializationError: for anything that is not a well-formed entry of this
            version: bad UTF-8 or JSON, another schema version, an unknown kind, a class
            outside the allow-list, fields of the wrong type, a timestamp that is not a
            finite float (e.g. a 400-digit integer), nesting too deep for Python. Nothing
            else, whatever the bytes. Never executes code named in the payload.
    """
    try:
        envelope = _parse(payload)
        if not isinstance(envelope, dict):
            raise _fail("not an object")
        if envelope.get("v") != CODEC_VERSION:
            raise _fail(f"schema version {envelope.get('v')!r} is not {CODEC_VERSION}")
        written_at = envelope.get("t")
        if (
            not isinstance(written_at, (int, float))
            or isinstance(written_at, bool)
            or not math.isfinite(written_at)  # OverflowError for an int beyond floats
        ):
            raise _fail("no timestamp")
        kind = envelope.get("k")
        if kind == "json":
            if "d" not in envelope:
                raise _fail("no data")
            return DecodedEntry(envelope["d"], float(written_at), _signature(envelope))
        if kind != "lc":
            raise _fail(f"unknown kind {kind!r}")
        data = envelope.get("d")
        if not isinstance(data, list):
            raise _fail("generations are not a list")
        generations = [_decode_generation(item) for item in data]
        return DecodedEntry(generations, float(written_at), _signature(envelope))
    except _DATA_ERRORS as exc:  # pydantic's ValidationError is a ValueError
        raise _fail(f"invalid data ({type(exc).__name__}: {_short(exc)})") from exc


def _short(exc: BaseException) -> str:
    # A message can quote the hostile data (a 400-digit number): keep log lines short.
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "..."


def _signature(envelope: dict[str, Any]) -> dict[str, Any] | None:
    signature = envelope.get("s")
    if signature is not None and not isinstance(signature, dict):
        raise _fail("signature is not an object")
    return signature
