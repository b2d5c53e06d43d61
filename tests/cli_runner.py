"""Running the ``llmemo`` CLI in-process from a test."""

from __future__ import annotations

import io
import sys

import pytest

from llmemo.cli import main


def run(*argv: str) -> tuple[int, str, str]:
    """Run the CLI in-process; return ``(exit code, stdout, stderr)``."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "stdout", out)
        patch.setattr(sys, "stderr", err)
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()
