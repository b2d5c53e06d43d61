"""Keeping third-party progress bars out of llmemo's own command output.

Libraries that load models draw progress bars on ``sys.stderr`` (tqdm's, used by
transformers for "Loading weights"): a bar is one line redrawn with carriage returns.
:func:`quiet_progress_bars` swaps ``sys.stderr`` for a filter that drops such lines and
passes every other line through as soon as it is complete, so warnings and errors still
show, in order. No library is imported or configured: it works whatever draws the bar.
"""

from __future__ import annotations

import contextlib
import io
import re
import sys
import threading
from collections.abc import Iterator
from typing import TextIO

__all__ = ["ProgressBarFilter", "quiet_progress_bars"]

# What a terminal would show of a tqdm-style bar: "label:  42%|####  | 43/103 [00:01<...]"
# or the rate/ETA block alone ("[00:00<00:00, 11313.10it/s]").
_BAR = re.compile(r"\d+%\|.*\||\[\d+:\d+<[^\]]*(?:it/s|s/it)\]")


class ProgressBarFilter(io.TextIOBase):
    """A text stream that writes to ``target`` every complete line that is not a progress
    bar. Thread-safe (model loaders write from worker threads).

    A line is what follows its last ``\\r`` (what a terminal would show). An unfinished
    line is held until its newline or :meth:`flush_pending`.
    """

    def __init__(self, target: TextIO) -> None:
        super().__init__()
        self.target = target
        self._pending = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            *lines, self._pending = self._pending.split("\n")
            for line in lines:
                self._emit(line, "\n")
        return len(text)

    def flush(self) -> None:
        self.target.flush()

    def flush_pending(self) -> None:
        """Write out (or drop, if a bar) an unfinished line."""
        with self._lock:
            if self._pending:
                self._emit(self._pending, "")
                self._pending = ""
        self.target.flush()

    def _emit(self, line: str, end: str) -> None:
        shown = line.rsplit("\r", 1)[-1]
        if _BAR.search(shown) or (not shown.strip() and "\r" in line):
            return
        self.target.write(shown + end)

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.target, "encoding", "utf-8")

    def isatty(self) -> bool:
        # Libraries draw bars only on terminals by default; say "no" to draw fewer.
        return False


@contextlib.contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Within the block, progress bars written to ``sys.stderr`` are dropped.

    Anything that kept a reference to the filter (a logging handler made inside the
    block) keeps writing through it afterwards: lines still reach the real stderr.
    """
    original = sys.stderr
    quiet = ProgressBarFilter(original)
    sys.stderr = quiet
    try:
        yield
    finally:
        quiet.flush_pending()
        if sys.stderr is quiet:
            sys.stderr = original
