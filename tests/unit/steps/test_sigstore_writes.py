"""The run's bound on signing processes at once and on transparency-log writes a minute."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from provenance_tasks.causes import classify
from provenance_tasks.errors import CommandFailed
from provenance_tasks.steps.sigstore_writes import SigstoreWrites, within


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def in_thread(bound: SigstoreWrites, writes: int, done: list[str], name: str) -> threading.Thread:
    def work() -> None:
        with bound.slot(writes):
            done.append(name)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_no_more_signing_processes_at_once_than_sigstore_jobs() -> None:
    bound = SigstoreWrites(2, 0, threading.Event())
    running, most, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def work() -> None:
        nonlocal running, most
        with bound.slot(1):
            with lock:
                running += 1
                most = max(most, running)
            release.wait(5)
            with lock:
                running -= 1

    threads = [threading.Thread(target=work, daemon=True) for _ in range(5)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while running < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # a third would have got in by now, were it let
    assert running == 2
    release.set()
    for thread in threads:
        thread.join(5)
    assert most == 2 and running == 0


def test_writes_past_the_minutes_budget_wait_for_the_oldest_to_leave_it() -> None:
    clock = Clock()
    bound = SigstoreWrites(0, 3, threading.Event(), clock=clock)
    done: list[str] = []
    in_thread(bound, 2, done, "first").join(5)
    second = in_thread(bound, 2, done, "second")  # 2 + 2 > 3 within the minute
    second.join(0.3)
    assert done == ["first"]
    in_thread(bound, 1, done, "small").join(5)  # 2 + 1 fits: not held behind the waiter
    assert done == ["first", "small"]
    clock.now += 60  # the first's writes leave the minute; the small one's too
    second.join(5)
    assert done == ["first", "small", "second"]


def test_an_attempt_of_more_writes_than_the_budget_goes_alone_in_its_minute() -> None:
    bound = SigstoreWrites(0, 3, threading.Event(), clock=Clock())
    done: list[str] = []
    in_thread(bound, 16, done, "set").join(5)  # a set of sixteen in one cosign call
    assert done == ["set"]


def test_without_the_log_only_the_slots_bound_an_attempt() -> None:
    bound = SigstoreWrites(0, 1, threading.Event(), clock=Clock())
    done: list[str] = []
    for n in range(3):
        in_thread(bound, 0, done, f"no-tlog-{n}").join(5)
    assert len(done) == 3


def test_a_cancelled_run_starts_no_attempt_that_waits() -> None:
    cancelled = threading.Event()
    bound = SigstoreWrites(1, 0, cancelled)
    errors: list[CommandFailed] = []
    with bound.slot(1):

        def waiter() -> None:
            try:
                with bound.slot(1):
                    pass
            except CommandFailed as exc:
                errors.append(exc)

        thread = threading.Thread(target=waiter, daemon=True)
        thread.start()
        cancelled.set()
        thread.join(5)
    assert len(errors) == 1
    assert classify(errors[0].stderr).kind == "permanent"  # never retried


class Log:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def info(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


@pytest.mark.parametrize("held", [True, False])
def test_a_wait_for_a_slot_is_said_in_the_log(held: bool) -> None:
    bound = SigstoreWrites(1, 0, threading.Event())
    log = Log()
    budgets: list[float] = []

    def call(left: float) -> str:
        budgets.append(left)
        return "signed"

    attempt = within(bound, log, "attest", 1, call)
    if not held:
        assert attempt(100.0) == "signed" and log.lines == []
        assert budgets == [pytest.approx(100.0, abs=0.05)]
        return
    release = threading.Timer(0.2, lambda: None)
    with bound.slot(1):
        outcome: list[object] = []
        thread = threading.Thread(target=lambda: outcome.append(attempt(100.0)), daemon=True)
        thread.start()
        release.start()
        release.join()
    thread.join(5)
    assert outcome == ["signed"]
    ((event, fields),) = log.lines
    assert "waited" in event and "sigstore_jobs 1" in event and fields["step"] == "attest"
    assert budgets[0] < 100.0  # the wait came out of the attempt's budget
