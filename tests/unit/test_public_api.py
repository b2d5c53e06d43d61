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


def test_dir_of_the_package_holds_the_api_and_its_submodules_only() -> None:
    # `from __future__ import annotations` in __init__ once leaked `annotations` here.
    assert "annotations" not in dir(llmemo)
    extra = {
        name
        for name in dir(llmemo)
        if not name.startswith("_")
        and name not in llmemo.__all__
        and not inspect.ismodule(getattr(llmemo, name))
    }
    assert extra == set()


def test_in_memory_caches_expose_their_settings_as_the_redis_ones_do() -> None:
    from llmemo.langchain import (
        InMemoryCache,
        InMemorySemanticCache,
        RedisCache,
        RedisSemanticCache,
    )

    from fakes import ConceptEmbeddings

    memory = InMemorySemanticCache(ConceptEmbeddings(), distance_threshold=0.15, ttl=30)
    redis_cache = RedisSemanticCache(ConceptEmbeddings(), distance_threshold=0.15, ttl=30)
    for cache in (memory, redis_cache):
        assert cache.distance_threshold == 0.15
        assert cache.ttl == 30
    assert InMemorySemanticCache(ConceptEmbeddings()).ttl is None
    assert InMemoryCache(ttl=5).ttl == RedisCache(ttl=5).ttl == 5
    with pytest.raises(AttributeError):
        memory.distance_threshold = 0.5  # type: ignore[misc]  # read-only: the core keeps it
    for cache in (memory, redis_cache):
        cache.close()


def test_every_field_of_cache_hit_is_documented() -> None:
    import dataclasses
    from pathlib import Path

    from llmemo.caches.base import CacheHit

    names = [f.name for f in dataclasses.fields(CacheHit)]
    doc = inspect.getdoc(CacheHit) or ""
    root = Path(__file__).resolve().parents[2]
    quickstart = (root / "docs" / "quickstart.md").read_text()
    section = quickstart.split("### Hit information", 1)[1].split("\n## ", 1)[0]
    readme = (root / "README.md").read_text()
    for name in names:
        assert f"{name}:" in doc, f"CacheHit docstring lacks {name}"
        assert f"`{name}`" in section, f"docs/quickstart.md 'Hit information' lacks {name}"
        assert name in readme.split("CacheHit(", 1)[1].split(")", 1)[0], name
