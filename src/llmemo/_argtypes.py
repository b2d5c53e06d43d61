"""``argparse`` value types shared by the command-line tools (``llmemo``, ``llmemo eval``)."""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["number_between", "positive_int"]


def positive_int(text: str) -> int:
    """An integer >= 1, or an ``ArgumentTypeError`` that says what was wrong."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1: {text!r}")
    return value


def number_between(low: float, high: float, what: str) -> Callable[[str], float]:
    """A type accepting a number in ``[low, high]``, described as ``what`` in errors."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be {what} in [{low:g}, {high:g}]: {text!r}")
        return value

    return parse
