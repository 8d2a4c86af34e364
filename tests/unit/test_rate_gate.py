"""A 429 from a registry pauses every call of the run to that registry (each image of a set),
for the wait the failed call was given: `RateGate`, and its use in `with_retries`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import structlog

from provenance_tasks.errors import CommandFailed
from provenance_tasks.logs import StepLog
from provenance_tasks.retry import RateGate, RetryPolicy, with_retries

RATE_LIMITED = (
    "ERROR: failed to push r.test/svc-a:v1: unexpected status from PUT request to "
    "https://r.test/v2/svc-a/blobs/uploads/: 429 Too Many Requests"
)


class Clock:
    """Time that passes only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def no_jitter() -> float:
    return 0.0


def policy(gate: RateGate | None) -> RetryPolicy:
    return RetryPolicy(rate_limit_wait_s=5, wait_s=1, jitter=no_jitter, gate=gate)


def failing(*stderrs: str) -> Callable[[float], str]:
    left = list(stderrs)

    def call(_: float) -> str:
        if left:
            raise CommandFailed("docker", ["docker", "buildx", "build"], 1, left.pop(0))
        return "pushed"

    return call


# --- RateGate -----------------------------------------------------------------------------------


def test_a_paused_registry_holds_its_next_call_for_what_is_left_of_the_pause() -> None:
    gate, clock, slept = RateGate(), Clock(), list[float]()
    gate.pause("r.test", 5.0, clock)
    clock.now += 2.0
    assert gate.hold("r.test", slept.append, clock) == 3.0
    assert slept == [3.0]


def test_another_registry_is_not_held() -> None:
    gate, clock, slept = RateGate(), Clock(), list[float]()
    gate.pause("r.test", 5.0, clock)
    assert gate.hold("other.test", slept.append, clock) == 0.0
    assert slept == []


def test_a_pause_that_is_over_holds_nothing() -> None:
    gate, clock, slept = RateGate(), Clock(), list[float]()
    gate.pause("r.test", 5.0, clock)
    clock.now += 5.0
    assert gate.hold("r.test", slept.append, clock) == 0.0
    assert slept == []


def test_a_shorter_pause_never_cuts_a_longer_one() -> None:
    gate, clock, slept = RateGate(), Clock(), list[float]()
    gate.pause("r.test", 20.0, clock)
    gate.pause("r.test", 5.0, clock)
    assert gate.hold("r.test", slept.append, clock) == 20.0
    clock.now += 1.0
    gate.pause("r.test", 30.0, clock)  # a later, longer one extends it
    assert gate.hold("r.test", slept.append, clock) == 30.0


# --- with_retries -------------------------------------------------------------------------------


def two_images(
    first: RetryPolicy, second: RetryPolicy, registry: str, stderr: str = RATE_LIMITED
) -> tuple[list[float], list[float], list[dict[str, Any]]]:
    """Image A's push fails once with `stderr`; two seconds into A's wait, image B pushes to
    `registry`. Returns what A slept, what B slept, and the warnings logged."""
    clock = Clock()
    a_slept: list[float] = []
    b_slept: list[float] = []

    def a_sleep(seconds: float) -> None:
        a_slept.append(seconds)
        clock.now += 2.0
        result = with_retries(
            StepLog({}),
            second,
            "build",
            "push svc-b",
            registry,
            failing(),
            sleep=b_slept.append,
            clock=clock,
        )
        assert result == "pushed"
        clock.now += seconds - 2.0

    with structlog.testing.capture_logs() as logs:
        result = with_retries(
            StepLog({}),
            first,
            "build",
            "push svc-a",
            "r.test",
            failing(stderr),
            sleep=a_sleep,
            clock=clock,
        )
    assert result == "pushed"
    return a_slept, b_slept, [dict(e) for e in logs if e["log_level"] == "warning"]


def test_a_rate_limit_in_one_call_pauses_another_call_to_that_registry() -> None:
    shared = policy(RateGate())
    a_slept, b_slept, warnings = two_images(shared, shared, "r.test")
    assert a_slept == [5.0]  # A waits the rate limit's wait, once
    assert b_slept == [3.0]  # B, two seconds in, waits what is left of it before its push
    held = [w for w in warnings if "rate limited this run" in w["event"]]
    assert [w["event"] for w in held] == [
        "push svc-b: waited 3.0s, as r.test rate limited this run"
    ]
    assert held[0]["wait_s"] == 3.0 and held[0]["step"] == "build"


def test_the_call_that_was_rate_limited_is_not_held_twice() -> None:
    shared = policy(RateGate())
    a_slept, _, warnings = two_images(shared, shared, "r.test")
    assert a_slept == [5.0]
    assert not any(w["event"].startswith("push svc-a: waited") for w in warnings)


def test_a_call_to_another_registry_is_not_paused() -> None:
    shared = policy(RateGate())
    _, b_slept, warnings = two_images(shared, shared, "other.test")
    assert b_slept == []
    assert not any("rate limited this run" in w["event"] for w in warnings)


def test_a_call_with_another_policy_is_not_paused() -> None:
    _, b_slept, _ = two_images(policy(RateGate()), policy(RateGate()), "r.test")
    assert b_slept == []


def test_without_a_gate_nothing_is_paused() -> None:
    _, b_slept, _ = two_images(policy(None), policy(None), "r.test")
    assert b_slept == []


@pytest.mark.parametrize(
    ("stderr", "wait"),
    [("503 Service Unavailable", 1.0), ("read: connection reset by peer", 0.25)],
)
def test_a_failure_that_is_no_rate_limit_pauses_no_one(stderr: str, wait: float) -> None:
    shared = policy(RateGate())
    a_slept, b_slept, _ = two_images(shared, shared, "r.test", stderr)
    assert a_slept == [wait] and b_slept == []


def test_a_policy_from_the_settings_has_a_gate_and_the_tag_audit_shares_it() -> None:
    from provenance_tasks.settings import resolve

    made = RetryPolicy.from_settings(resolve({}))
    assert made.gate is not None
    assert made.for_tag_audit().gate is made.gate
    assert RetryPolicy.from_settings(resolve({})).gate is not made.gate  # one gate per run
