"""``llmemo._quiet``: progress bars are dropped, every other line passes, in order."""

from __future__ import annotations

import io
import sys

from llmemo._quiet import ProgressBarFilter, quiet_progress_bars


def test_bars_are_dropped_and_other_lines_kept_in_order() -> None:
    target = io.StringIO()
    quiet = ProgressBarFilter(target)
    quiet.write("first line\n")
    quiet.write("\rLoading weights:   0%|          | 0/103 [00:00<?, ?it/s]")
    quiet.write("\rLoading weights: 100%|##########| 103/103 [00:00<00:00, 11313.10it/s]")
    quiet.write("\n")
    quiet.write("Warning: something real")
    assert target.getvalue() == "first line\n"  # the last line is not finished yet
    quiet.write(" happened\n")
    quiet.write("\r 42%|####      | 43/103")  # a bar never finished by a newline
    quiet.flush_pending()
    assert target.getvalue() == "first line\nWarning: something real happened\n"


def test_the_context_restores_stderr() -> None:
    before = sys.stderr
    with quiet_progress_bars():
        assert isinstance(sys.stderr, ProgressBarFilter)
    assert sys.stderr is before
