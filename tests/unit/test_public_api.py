"""The public surface: ``__all__``, docstrings, exception tree, a light import."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys
from typing import Any

import pytest

import llmemo
import llmemo.langchain
import llmemo.local
import llmemo.policy
import llmemo.verify
from llmemo import errors


@pytest.mark.parametrize(
    "module",
    [
        llmemo,
        llmemo.langchain,
        errors,
        llmemo.verify,
        llmemo.local,
        llmemo.policy,
        # `llmemo.options` is the context manager re-exported by the package; the module:
        importlib.import_module("llmemo.options"),
    ],
)
def test_all_is_exact_and_documented(module: Any) -> None:
    exported = module.__all__
    assert sorted(exported) == sorted(set(exported))
    # Re-exporting modules must list every llmemo name they hold; the others, every public
    # name they define (names they merely import stay out of their __all__).
    reexports = module.__name__ in {"llmemo", "llmemo.langchain", "llmemo.verify"}
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and (
            getattr(value, "__module__", "").startswith("llmemo")
            if reexports
            else getattr(value, "__module__", "") == module.__name__
        )
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
