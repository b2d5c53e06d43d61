"""docs/cli.md's synopsis and docs/index.md say what ``llmemo --help`` says: the same
commands, and for each the same options with the same argument names and choices."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from llmemo.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
# An option and, if it takes one, its argument: a METAVAR or choices a|b|c.
_OPTION = re.compile(r"(--[a-z][a-z-]*)(?: ([A-Z][A-Za-z.]*|[a-z]+(?:\|[a-z]+)+))?")


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    [action] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def _synopsis() -> dict[str, str]:
    """Command -> its synopsis text (continuation lines joined), from docs/cli.md; the
    line of ``llmemo`` itself is under ``""``."""
    text = (DOCS / "cli.md").read_text(encoding="utf-8")
    block = text.split("```\n", 2)[1]
    commands: dict[str, str] = {}
    current = None
    for line in block.splitlines():
        match = re.match(r"llmemo ([a-z]+\b)?", line)  # no command: the top-level line
        if match:
            current = match.group(1) or ""
            commands[current] = line[match.end() :]
        elif current is not None:
            commands[current] += " " + line.strip()
    return commands


def _documented(text: str) -> dict[str, str | None]:
    return {option: argument or None for option, argument in _OPTION.findall(text)}


def _actual(parser: argparse.ArgumentParser) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--") and o != "--help"]
        if not longs:
            continue
        if action.nargs == 0:
            argument = None
        elif action.choices is not None:
            argument = "|".join(map(str, action.choices))
        else:
            argument = str(action.metavar or action.dest.upper())
        found[longs[0]] = argument
    return found


def test_the_synopsis_lists_every_command() -> None:
    synopsis = _synopsis()
    assert set(synopsis) == {"", *_subparsers()}
    assert _documented(synopsis[""]) == _actual(build_parser())  # --version


@pytest.mark.parametrize("command", sorted(_subparsers()))
def test_the_synopsis_of_each_command_matches_its_help(command: str) -> None:
    parser = _subparsers()[command]
    text = _synopsis()[command]
    assert _documented(text) == _actual(parser)
    positionals = [a.metavar for a in parser._actions if not a.option_strings and a.metavar]
    for metavar in positionals:
        assert str(metavar) in text


def test_the_docs_index_names_every_command() -> None:
    index = (DOCS / "index.md").read_text(encoding="utf-8")
    line = next(line for line in index.splitlines() if "(cli.md)" in line)
    for command in _subparsers():
        assert f"`{command}`" in line, command
