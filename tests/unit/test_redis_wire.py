"""The lean Redis runners' packer writes exactly what redis-py's would."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio.connection import Connection
from redis.exceptions import DataError

from llmemo.stores.redis._common import _packed

BLOB = bytes(range(256)) * 6

SAME_BYTES = [
    (("GET", "llmemo:v1:x:abc"),),
    (("SET", "k:é€😀", b"\x00\xff" * 5000, "PX", 1500),),
    (("SET", "big", b"x" * 100_000),),
    (
        ("HGET", "idx:v1:s:{p}:e", "payload"),
        (
            "FT.SEARCH",
            "idx",
            "(@partition:{$p})=>[KNN 4 @vec $blob AS dist]",
            "PARAMS",
            4,
            "p",
            "abc",
            "blob",
            BLOB,
            "LIMIT",
            0,
            -1,
            "DIALECT",
            2,
        ),
    ),
    (("EVALSHA", "ab12", 1, "k", 10**20, ""),),
]


@pytest.mark.parametrize("commands", SAME_BYTES)
def test_str_bytes_and_int_arguments_pack_to_redis_pys_bytes(commands: Any) -> None:
    connection = Connection()
    packed = _packed(connection, commands)
    assert isinstance(packed, bytes)
    assert packed == b"".join(connection.pack_commands(commands))


@pytest.mark.parametrize(
    "commands",
    [
        (("SET", "k", 1.5),),  # floats: redis-py's repr-based encoding
        (("CLIENT SETNAME", "x"),),  # a command name redis-py splits
        (("GET", "k"), ("SET", "k", 2.5)),  # one such command in a pipeline
    ],
)
def test_other_arguments_are_left_to_redis_py(commands: Any) -> None:
    connection = Connection()
    assert _packed(connection, commands) == connection.pack_commands(commands)


def test_another_encoding_is_left_to_redis_py() -> None:
    connection = Connection(encoding="latin-1")
    commands = (("SET", "clé", "é"),)
    assert _packed(connection, commands) == connection.pack_commands(commands)
    assert b"cl\xe9" in b"".join(_packed(connection, commands))


@pytest.mark.parametrize(
    ("argument", "error"), [(True, DataError), (None, DataError), ("\ud800", UnicodeEncodeError)]
)
def test_arguments_redis_py_refuses_are_refused_the_same_way(
    argument: Any, error: type[Exception]
) -> None:
    connection = Connection()
    with pytest.raises(error):
        connection.pack_commands((("SET", "k", argument),))
    with pytest.raises(error):
        _packed(connection, (("SET", "k", argument),))
