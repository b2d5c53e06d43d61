"""``python -m llmemo``: the ``llmemo`` command (see :mod:`llmemo.cli`)."""

from __future__ import annotations

from llmemo.cli import main

raise SystemExit(main())
