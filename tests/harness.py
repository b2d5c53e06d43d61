"""Shared test helpers: store harnesses and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

S = TypeVar("S")


@dataclass
class Harness(Generic[S]):
    """A store under test.

    Attributes:
        store: The store, empty, private to this test.
        prefix: A namespace unique to this test (key-store keys go under it).
        elapse: Lets ``seconds`` pass as far as the store's TTLs are concerned (a fake
            clock for in-memory stores, a real sleep for servers).
        teardown: Awaited after the test (closes clients, removes what the test wrote).
    """

    store: S
    prefix: str
    elapse: Callable[[float], Awaitable[None]]
    teardown: Callable[[], Awaitable[None]] = field(default=lambda: asyncio.sleep(0))


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    async def elapse(self, seconds: float) -> None:
        self.now += seconds
