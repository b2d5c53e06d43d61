"""The public surface: ``__all__``, docstrings, exception tree, a light import."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest

import llmemo
import llmemo.langchain
from llmemo import errors


@pytest.mark.parametrize("module", [llmemo, llmemo.langchain, errors])
def test_all_is_exact_and_documented(module: object) -> None:
    exported = module.__all__  # type: ignore[attr-defined]
    assert sorted(exported) == sorted(set(exported))
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith("llmemo")
    }
    assert public <= set(exported)
    for name in exported:
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            assert inspect.getdoc(obj), f"{name} has no docstring"


def test_exception_tree() -> None:
    assert issubclass(errors.ConfigurationError, ValueError)
    assert issubclass(errors.MissingDependencyError, ImportError)
    assert issubclass(errors.BackendUnavailableError, ConnectionError)
    assert issubclass(errors.BackendTimeoutError, TimeoutError)
    assert issubclass(errors.CapabilityError, errors.BackendError)
    for name in errors.__all__:
        assert issubclass(getattr(errors, name), errors.LlmemoError)


def test_import_llmemo_loads_no_heavy_dependency() -> None:
    code = (
        "import sys, llmemo; "
        "heavy = ('numpy', 'redis', 'langchain_core', 'anyio'); "
        "print(sorted(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
