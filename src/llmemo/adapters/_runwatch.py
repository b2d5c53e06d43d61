"""Watching LangChain model runs so that a failed single-flight leader releases its waiters.

A single-flight leader (:mod:`llmemo.adapters._singleflight`) missed the cache and is
expected to call the model and then ``update``. When its model call raises, LangChain
reports ``on_llm_error`` for the run; this module turns that report into the release of
the flights the run leads, so that waiters call the model themselves at once instead of
waiting for a timeout.

How a flight is tied to a run (``confirmed``):

* chat models look the cache up *inside* their run (after ``on_chat_model_start``): the
  handler records the run id in a context variable of the caller, and a leader that joins
  while that run is active is bound to it at once;
* completion models (``BaseLLM``) look up *before* ``on_llm_start``: the leader records
  its flight in a context variable, and ``on_llm_start`` for the same prompt (called in
  that context or a copy of it) binds it.

``on_llm_error`` releases the bound flights. ``on_llm_end`` does not (a completion
model's ``update`` comes after it): it only unbinds them, and
:class:`~llmemo.adapters._singleflight.SingleFlight` then gives the ``update`` a short
grace before releasing the waiters. A flight never bound to a run (a bare ``lookup``)
gets that grace only.

The handler is added to every LangChain callback manager through
``register_configure_hook`` (:func:`install`, once per process). It runs inline (no thread
hop, no task; except where LangChain would then hide the user's non-inline handlers, see
``run_inline``) and its handling of events other than model start/end/error is switched
off; per run it costs a context-variable write and a dict insert and pop.

Where a model run's events are not seen (for example an async completion model's
``on_llm_start`` while another inline handler, such as LangSmith's tracer, is present),
the flight simply stays unconfirmed: its waiters wait the grace, never longer.
"""

from __future__ import annotations

import sys
import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmemo.adapters._singleflight import SingleFlight, _Flight

__all__ = ["active_run", "bind", "install", "note_unbound"]

# A bound flight: its table, key and the flight itself (released only if still open).
_Bound = tuple["SingleFlight", str, "_Flight"]

#: Most runs tracked at once (beyond it the table is reset: flights then only get the
#: grace, never a longer wait).
_MAX_RUNS = 65536

# run id -> flights bound to that run (None: none yet). Entries live while the run does.
_runs: dict[Any, list[_Bound] | None] = {}
_runs_lock = threading.Lock()
# The chat-model run active in this context (set by on_chat_model_start).
_current_run: ContextVar[Any] = ContextVar("llmemo_current_run", default=None)


class _Unbound:
    """Flights led in one context (task or thread) not yet bound to a run."""

    __slots__ = ("items", "owner", "prune_at")

    def __init__(self, owner: Any) -> None:
        self.owner = owner
        self.items: list[tuple[str, _Bound]] = []  # (prompt, bound)
        self.prune_at = 8

    def add(self, prompt: str, bound: _Bound) -> None:
        if len(self.items) >= self.prune_at:
            # Drop flights that ended: memory stays flat however many a task leads.
            self.items = [item for item in self.items if not item[1][2].done.is_set()]
            self.prune_at = max(8, 2 * len(self.items))
        self.items.append((prompt, bound))


_unbound: ContextVar[_Unbound | None] = ContextVar("llmemo_unbound_flights", default=None)


def active_run() -> Any:
    """The id of the chat-model run active in this context, or ``None``."""
    run_id = _current_run.get()
    return run_id if run_id is not None and run_id in _runs else None


def bind(run_id: Any, bound: _Bound) -> bool:
    """Bind a flight to ``run_id``; whether the run was still active."""
    with _runs_lock:
        if run_id not in _runs:
            return False
        flights = _runs[run_id]
        if flights is None:
            _runs[run_id] = flights = []
        flights.append(bound)
        return True


def note_unbound(owner: Any, prompt: str, bound: _Bound) -> None:
    """Remember a flight led by ``owner`` (the current task or thread) for the
    ``on_llm_start`` of its prompt."""
    holder = _unbound.get()
    if holder is None or holder.owner != owner:
        holder = _Unbound(owner)
        _unbound.set(holder)
    holder.add(prompt, bound)


def _start_run(run_id: Any) -> None:
    if len(_runs) >= _MAX_RUNS:
        with _runs_lock:
            _runs.clear()
    _runs[run_id] = None


def _end_run(run_id: Any, failed: bool) -> None:
    flights = _runs.pop(run_id, None)  # atomic; binding happens before the run ends
    for table, key, flight in flights or ():
        if failed:
            table.abandon(key, flight)
        else:
            table.unconfirm(key, flight)


_installed = False
_install_lock = threading.Lock()


def install() -> None:
    """Add the run watcher to every LangChain callback manager (idempotent)."""
    global _installed
    with _install_lock:
        if _installed:
            return
        from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackHandler
        from langchain_core.tracers.context import register_configure_hook

        on_llm_start_code = AsyncCallbackManager.on_llm_start.__code__

        class _RunWatcher(BaseCallbackHandler):
            """Reports model runs' start, end and failure to single-flight."""

            @property
            def run_inline(self) -> bool:  # type: ignore[override]  # a class attribute there
                """Inline (called in the caller's task: no thread hop, no task), except
                as seen from ``AsyncCallbackManager.on_llm_start``: up to langchain-core
                1.8 at least, it skips every non-inline handler when any handler is inline
                (langchain-ai/langchain#39633), so there this handler passes for a
                non-inline one and never hides the user's handlers. (``ahandle_event``
                then still calls it inline.)"""
                frame = sys._getframe(1)
                if frame.f_code.co_name == "<listcomp>":  # Python < 3.12
                    frame = frame.f_back  # type: ignore[assignment]
                return frame is None or frame.f_code is not on_llm_start_code

            @property
            def ignore_chain(self) -> bool:
                return True

            @property
            def ignore_agent(self) -> bool:
                return True

            @property
            def ignore_retriever(self) -> bool:
                return True

            @property
            def ignore_retry(self) -> bool:
                return True

            @property
            def ignore_custom_event(self) -> bool:
                return True

            def on_chat_model_start(self, *args: Any, run_id: Any = None, **kwargs: Any) -> None:
                _start_run(run_id)
                _current_run.set(run_id)

            def on_llm_start(
                self, serialized: Any, prompts: list[str], *, run_id: Any = None, **kwargs: Any
            ) -> None:
                _start_run(run_id)
                holder = _unbound.get()
                if holder is None or not holder.items:
                    return
                keep = []
                for prompt, bound in holder.items:
                    if prompt in prompts and not bound[2].done.is_set():
                        if bind(run_id, bound):
                            bound[0].confirm(bound[1], bound[2])
                            continue
                    keep.append((prompt, bound))
                holder.items = keep

            def on_llm_end(self, response: Any, *, run_id: Any = None, **kwargs: Any) -> None:
                _end_run(run_id, failed=False)

            def on_llm_error(
                self, error: BaseException, *, run_id: Any = None, **kwargs: Any
            ) -> None:
                _end_run(run_id, failed=True)

        watcher = _RunWatcher()
        register_configure_hook(ContextVar("llmemo_run_watcher", default=watcher), False)
        _installed = True
