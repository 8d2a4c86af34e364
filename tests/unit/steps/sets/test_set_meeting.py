"""The meeting of a set's images at each cosign call: grouped calls, each failure its own."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from provenance_tasks.causes import outlasted_retries
from provenance_tasks.errors import CommandFailed
from provenance_tasks.steps.sets.meeting import Meeting, Request


class Calls:
    """What the fake tool was asked, in order: each call's references."""

    def __init__(self, fails: set[str] | None = None, error: Callable[[], Exception] | None = None):
        self.made: list[list[str]] = []
        self.fails = fails or set()
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, refs: list[str]) -> list[str]:
        with self.lock:
            self.made.append(sorted(refs))
        if self.error is not None:
            raise self.error()
        if self.fails & set(refs):
            raise RuntimeError(f"cannot sign {sorted(self.fails & set(refs))}")
        return [f"signed {ref}" for ref in refs]


def meet_all(meeting: Meeting, requests: list[Request]) -> list[Any]:
    """Each request from its own image's thread, as a set's images make them."""
    results: list[Any] = [None] * len(requests)

    def one(n: int) -> None:
        with meeting.image():
            try:
                results[n] = meeting.meet(requests[n])
            except Exception as exc:
                results[n] = exc

    threads = [threading.Thread(target=one, args=(n,)) for n in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads), "the meeting never fired"
    return results


def mine(result: list[str], refs: tuple[str, ...]) -> list[str]:
    return [line for line in result if line.split()[-1] in refs]


def test_requests_with_one_key_make_one_call_and_each_takes_its_part() -> None:
    calls = Calls()
    requests = [Request("k", (f"r{n}",), calls, mine=mine) for n in range(4)]
    results = meet_all(Meeting(4, jobs=4), requests)
    assert calls.made == [["r0", "r1", "r2", "r3"]]
    assert results == [[f"signed r{n}"] for n in range(4)]


def test_requests_with_different_keys_make_one_call_per_key() -> None:
    calls = Calls()
    requests = [Request(n % 2, (f"r{n}",), calls, mine=mine) for n in range(4)]
    meet_all(Meeting(4, jobs=4), requests)
    assert sorted(calls.made) == [["r0", "r2"], ["r1", "r3"]]


def test_a_failing_group_is_tried_one_image_at_a_time_and_the_failure_is_its_own() -> None:
    calls = Calls(fails={"r2"})
    requests = [Request("k", (f"r{n}",), calls, mine=mine) for n in range(3)]
    results = meet_all(Meeting(3, jobs=3), requests)
    assert calls.made[0] == ["r0", "r1", "r2"]
    assert sorted(calls.made[1:]) == [["r0"], ["r1"], ["r2"]]
    assert results[0] == ["signed r0"] and results[1] == ["signed r1"]
    assert isinstance(results[2], RuntimeError)


def test_a_registry_that_kept_failing_fails_the_group_once_not_per_image() -> None:
    def down() -> Exception:
        return CommandFailed("cosign", ["cosign", "sign"], 1, "error: 503 Service Unavailable")

    calls = Calls(error=down)
    requests = [Request("k", (f"r{n}",), calls, shared=outlasted_retries) for n in range(3)]
    results = meet_all(Meeting(3, jobs=3), requests)
    assert len(calls.made) == 1  # not three more calls, each waiting out the retries
    assert all(isinstance(r, CommandFailed) for r in results)


def test_it_fires_once_jobs_requests_wait_without_waiting_for_every_image() -> None:
    meeting = Meeting(3, jobs=2)
    calls = Calls()
    first = [Request("k", (f"r{n}",), calls, mine=mine) for n in range(2)]
    results = meet_all(meeting, first)  # the third image is still building
    assert results == [["signed r0"], ["signed r1"]] and calls.made == [["r0", "r1"]]
    meeting.left()  # the third ends: nothing waits, nothing fires


def test_an_image_that_ends_lets_the_others_go() -> None:
    meeting = Meeting(2, jobs=2)
    calls = Calls()
    done: list[Any] = []

    def waiting() -> None:
        with meeting.image():
            done.append(meeting.meet(Request("k", ("r0",), calls)))

    thread = threading.Thread(target=waiting)
    thread.start()
    with meeting.image():
        pass  # the other image failed before it reached any call
    thread.join(timeout=10)
    assert done == [["signed r0"]] and calls.made == [["r0"]]


def test_the_same_reference_twice_is_never_one_call() -> None:
    calls = Calls()
    requests = [Request("k", ("same",), calls, mine=mine) for _ in range(2)]
    meet_all(Meeting(2, jobs=2), requests)
    assert calls.made == [["same"], ["same"]]


@pytest.mark.parametrize("jobs", [1, 2])
def test_jobs_bounds_the_images_at_work(jobs: int) -> None:
    meeting = Meeting(4, jobs=jobs)
    busy, most = [0], [0]
    lock = threading.Lock()

    def one() -> None:
        with meeting.image():
            with lock:
                busy[0] += 1
                most[0] = max(most[0], busy[0])
            threading.Event().wait(0.02)
            with lock:
                busy[0] -= 1

    threads = [threading.Thread(target=one) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert most[0] == jobs


def test_an_image_whose_part_cant_be_taken_gets_the_error_not_a_success() -> None:
    def broken(result: list[str], refs: tuple[str, ...]) -> list[str]:
        raise KeyError("no payload")

    calls = Calls()
    requests = [Request("k", ("r0",), calls, mine=broken), Request("k", ("r1",), calls, mine=mine)]
    results = meet_all(Meeting(2, jobs=2), requests)
    assert isinstance(results[0], KeyError) and results[1] == ["signed r1"]


def test_a_request_that_waited_long_enough_goes_with_whoever_waits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from provenance_tasks.steps.sets import meeting as module

    monkeypatch.setattr(module, "PATIENCE_S", 0.05)
    meeting, calls = Meeting(2, jobs=2), Calls()
    # One image waits; the other builds for as long as it takes (it never comes here).
    results = meet_all(meeting, [Request("k", ("r0",), calls, mine=mine)])
    assert results == [["signed r0"]] and calls.made == [["r0"]]


def test_a_cancelled_meeting_fails_who_waits_and_makes_no_call() -> None:
    meeting, calls = Meeting(3, jobs=3), Calls()
    got: list[Any] = []

    def waiting() -> None:
        with meeting.image():
            try:
                got.append(meeting.meet(Request("k", ("r0",), calls)))
            except Exception as exc:
                got.append(exc)

    thread = threading.Thread(target=waiting)
    thread.start()
    threading.Event().wait(0.05)
    meeting.cancel()
    thread.join(timeout=10)
    assert calls.made == [] and type(got[0]).__name__ == "MeetingCancelled"
    with pytest.raises(Exception, match="cancelled"):
        meeting.meet(Request("k", ("r1",), calls))
