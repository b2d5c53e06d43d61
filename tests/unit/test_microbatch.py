"""MicroBatcher: concurrent requests share passes on one worker thread, bounded, in order.

The batch function here is a real function that records its calls and can be held on an
event, so every test decides exactly what is queued while a pass runs (no timing luck).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
import time
import warnings

import pytest

from llmemo._microbatch import MicroBatcher
from llmemo.errors import BackendUnavailableError


class Recorder:
    """``run(texts) -> [text.upper()]``; optionally holds the first pass until released."""

    def __init__(self, *, hold_first: bool = False, fail_on: str | None = None) -> None:
        self.calls: list[list[str]] = []
        self.threads: set[int] = set()
        self.active = 0
        self.most_active = 0
        self.started = threading.Event()
        self.release = threading.Event()
        self.hold_first = hold_first
        self.fail_on = fail_on
        if not hold_first:
            self.release.set()

    def __call__(self, texts: list[str]) -> list[str]:
        self.active += 1
        self.most_active = max(self.most_active, self.active)
        try:
            self.calls.append(list(texts))
            self.threads.add(threading.get_ident())
            self.started.set()
            assert self.release.wait(timeout=30)
            if self.fail_on is not None and self.fail_on in texts:
                raise ValueError(f"cannot run {self.fail_on!r}")
            return [text.upper() for text in texts]
        finally:
            self.active -= 1


def make(run: Recorder, **kwargs: float) -> MicroBatcher[str]:
    options = {"window": 0.0005, "max_batch": 64, "max_queue": 1000} | kwargs
    return MicroBatcher(
        run,
        window=float(options["window"]),
        max_batch=int(options["max_batch"]),
        max_queue=int(options["max_queue"]),
    )


def test_requests_queued_during_a_pass_share_the_next_one() -> None:
    run = Recorder(hold_first=True)
    batcher = make(run)
    first = batcher.submit(["a"])
    assert run.started.wait(timeout=30)
    later = [batcher.submit([f"q{i}", f"r{i}"]) for i in range(10)]
    run.release.set()
    assert first.result(timeout=30) == ["A"]
    assert [f.result(timeout=30) for f in later] == [[f"Q{i}", f"R{i}"] for i in range(10)]
    assert run.calls[0] == ["a"]
    assert run.calls[1] == [t for i in range(10) for t in (f"q{i}", f"r{i}")]
    assert (batcher.passes, batcher.texts_run) == (2, 21)
    batcher.close()


def test_a_pass_takes_at_most_max_batch_texts_of_several_requests() -> None:
    run = Recorder(hold_first=True)
    batcher = make(run, max_batch=4)
    first = batcher.submit(["first"])
    assert run.started.wait(timeout=30)
    later = [batcher.submit([f"t{i}"]) for i in range(9)]
    big = batcher.submit([f"big{i}" for i in range(6)])  # larger than max_batch: runs whole
    run.release.set()
    assert first.result(timeout=30) == ["FIRST"]
    assert [f.result(timeout=30)[0] for f in later] == [f"T{i}" for i in range(9)]
    assert big.result(timeout=30) == [f"BIG{i}" for i in range(6)]
    assert [len(call) for call in run.calls] == [1, 4, 4, 1, 6]
    batcher.close()


def test_a_full_queue_refuses_at_once() -> None:
    run = Recorder(hold_first=True)
    batcher = make(run, max_queue=5)
    running = batcher.submit(["running"])
    assert run.started.wait(timeout=30)
    queued = [batcher.submit(["x", "y"]), batcher.submit(["z", "w"])]  # 4 waiting
    with pytest.raises(BackendUnavailableError, match="max_queue=5"):
        batcher.submit(["one", "too many"])
    tail = batcher.submit(["fits"])  # 5 waiting
    run.release.set()
    assert running.result(timeout=30) == ["RUNNING"]
    assert [f.result(timeout=30) for f in [*queued, tail]] == [["X", "Y"], ["Z", "W"], ["FITS"]]
    batcher.close()


def test_a_failing_pass_fails_its_requests_only() -> None:
    run = Recorder(hold_first=True, fail_on="bad")
    batcher = make(run, max_batch=2)
    first = batcher.submit(["ok"])
    assert run.started.wait(timeout=30)
    bad_pass = [batcher.submit(["bad"]), batcher.submit(["with bad"])]
    good = batcher.submit(["fine"])
    run.release.set()
    assert first.result(timeout=30) == ["OK"]
    for future in bad_pass:
        with pytest.raises(ValueError, match="cannot run 'bad'"):
            future.result(timeout=30)
    assert good.result(timeout=30) == ["FINE"]
    batcher.close()


def test_a_cancelled_request_is_not_run() -> None:
    run = Recorder(hold_first=True)
    batcher = make(run)
    first = batcher.submit(["first"])
    assert run.started.wait(timeout=30)
    dropped = batcher.submit(["dropped"])
    kept = batcher.submit(["kept"])
    assert dropped.cancel()
    run.release.set()
    assert kept.result(timeout=30) == ["KEPT"]
    assert first.result(timeout=30) == ["FIRST"]
    assert all("dropped" not in call for call in run.calls)
    batcher.close()


def test_a_lone_request_does_not_wait_for_the_window() -> None:
    # With a 90 ms window, ten sequential lone requests would take >= 0.9 s if each
    # waited for company; they run at once instead (each is alone in its pass).
    run = Recorder()
    batcher = make(run, window=0.09)
    started = time.monotonic()
    for i in range(10):
        assert batcher.submit([f"t{i}"]).result(timeout=30) == [f"T{i}"]
    assert time.monotonic() - started < 0.9
    assert [len(call) for call in run.calls] == [1] * 10
    batcher.close()


async def test_async_callers_share_passes_off_the_loop() -> None:
    run = Recorder()
    batcher = make(run)
    loop_thread = threading.get_ident()
    results = await asyncio.gather(
        *(asyncio.wrap_future(batcher.submit([f"text {i}"])) for i in range(32))
    )
    assert results == [[f"TEXT {i}"] for i in range(32)]
    assert batcher.texts_run == 32
    assert batcher.passes < 32  # at least some requests shared a pass
    assert loop_thread not in run.threads
    batcher.close()


def test_close_stops_the_worker_and_refuses_new_requests() -> None:
    run = Recorder()
    batcher = make(run)
    assert batcher.submit(["a"]).result(timeout=30) == ["A"]
    thread = batcher._thread
    assert thread is not None
    batcher.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(["b"])


def test_submit_from_many_threads() -> None:
    run = Recorder()
    batcher = make(run)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(lambda i=i: batcher.submit([str(i)]).result(30)) for i in range(64)]
        assert sorted(f.result(timeout=30)[0] for f in futures) == sorted(str(i) for i in range(64))
    assert len(run.threads) == 1
    batcher.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_gets_a_worker_of_its_own() -> None:
    run = Recorder()
    batcher = make(run)
    assert batcher.submit(["parent"]).result(timeout=30) == ["PARENT"]
    read, write = os.pipe()
    with warnings.catch_warnings():
        # Python warns that forking a process with threads may deadlock; this child only
        # runs the batcher, whose state it resets.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            ok = batcher.submit(["child"]).result(timeout=30) == ["CHILD"]
            os.write(write, b"ok" if ok else b"wrong")
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 16) == b"ok"
    os.close(read)
    assert status == 0
    batcher.close()


def test_an_idle_batcher_runs_a_blocking_caller_inline() -> None:
    run = Recorder()
    batcher = make(run)
    assert batcher.run_inline_if_idle(["a", "b"]) == ["A", "B"]
    assert run.threads == {threading.get_ident()}
    assert (batcher.passes, batcher.texts_run) == (1, 2)
    assert batcher._thread is None  # no worker was needed


def test_inline_and_queued_passes_never_overlap() -> None:
    run = Recorder(hold_first=True)
    batcher = make(run)
    inline: list[list[str] | None] = []
    caller = threading.Thread(target=lambda: inline.append(batcher.run_inline_if_idle(["x"])))
    caller.start()
    assert run.started.wait(timeout=30)
    assert batcher.run_inline_if_idle(["busy"]) is None  # a pass is running
    queued = batcher.submit(["queued"])
    time.sleep(0.05)  # the worker must not start while the inline pass runs
    assert run.calls == [["x"]]
    run.release.set()
    caller.join(timeout=30)
    assert inline == [["X"]]
    assert queued.result(timeout=30) == ["QUEUED"]
    assert run.most_active == 1
    batcher.close()
