"""Run one registry call under the retry policy: log each retry, explain the final failure.

Every step that talks to a registry (login, build's push, the tag audit, sign, verify) calls its
tool through `with_retries`. The call receives the seconds left in the budget, so a tool that takes
a timeout (cosign's --timeout) never runs past it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from provenance_tasks.adapters.process import CommandFailed
from provenance_tasks.references import registry_of
from provenance_tasks.retry import Cause, RetryPolicy
from provenance_tasks.steps.session import Session

T = TypeVar("T")

HINTS = {
    "unauthorized": "check the user name and password (or token) for {registry}",
    "Fulcio unauthorized": "Fulcio refused the ID token: check that Fulcio trusts its issuer, "
    "that its audience is sigstore and that it has not expired",
    "denied": "check that the user has push and pull rights on the repository at {registry}",
    "name invalid": "{registry} refused the repository name: check --image",
    "manifest invalid": "{registry} refused the manifest: check that it accepts OCI indexes",
}


class _Budget:
    """When this call started, how long its last attempt took, and how many it made."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self.last_attempt_s = 0.0
        self.attempts = 0

    @property
    def elapsed(self) -> float:
        return self.clock() - self.started


class _StopBeforeOverrun(stop_base):
    """Don't start an attempt that would likely end past the budget: the wait plus another
    attempt as long as the last one (buildx has no timeout to cut it short)."""

    def __init__(self, policy: RetryPolicy, budget: _Budget) -> None:
        self.policy, self.budget = policy, budget

    def __call__(self, state: RetryCallState) -> bool:
        upcoming = state.upcoming_sleep or 0.0
        return self.budget.elapsed + upcoming + self.budget.last_attempt_s > self.policy.budget_s


class _WaitForCause(wait_base):
    """The policy's wait for the cause of the failure (a 429 waits longer)."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy

    def __call__(self, state: RetryCallState) -> float:
        return self.policy.wait(state.attempt_number, _cause(state))


def _cause(state: RetryCallState) -> Cause:
    error = state.outcome.exception() if state.outcome else None
    assert isinstance(error, CommandFailed)
    return error.cause


def with_retries(
    session: Session,
    step: str,
    what: str,
    registry: str,
    call: Callable[[float], T],
    *,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`call(seconds_left)` until it succeeds, fails for good, or the policy runs out."""
    policy = policy or session.retry_policy
    budget = _Budget(clock)

    def log_retry(state: RetryCallState) -> None:
        cause = _cause(state)
        waited = state.next_action.sleep if state.next_action else 0.0
        session.log.warning(
            f"{what}: attempt {state.attempt_number} failed ({cause.reason}), "
            f"retrying in {waited:.1f}s",
            step=step,
            attempt=state.attempt_number,
            wait_s=round(waited, 2),
            cause=cause.describe,
        )

    def attempt() -> T:
        begun = clock()
        budget.attempts += 1
        session.log.bind(attempt=budget.attempts)  # the tool's output lines carry their attempt
        try:
            return call(max(policy.budget_s - (begun - budget.started), 1.0))
        finally:
            budget.last_attempt_s = clock() - begun

    retrying = Retrying(
        stop=stop_after_attempt(policy.attempts) | _StopBeforeOverrun(policy, budget),
        wait=_WaitForCause(policy),
        retry=retry_if_exception(
            lambda error: isinstance(error, CommandFailed) and policy.retries(error.cause)
        ),
        before_sleep=log_retry,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(attempt)
    except CommandFailed as exc:
        raise explain(exc, what, registry, budget.attempts, budget.elapsed, policy) from None
    finally:
        session.log.bind(attempt=None)


def read_digest(session: Session, step: str, reference: str, *, lag: bool = False) -> str:
    """The digest `reference` (a tag or a digest) points at, read at the registry, retried.

    With `lag`, a reference the registry doesn't show yet is waited for briefly (right after a
    push); otherwise that answer is final.
    """
    return with_retries(
        session,
        step,
        f"read {reference}",
        registry_of(reference),
        lambda _: session.docker.resolve(reference),
        policy=session.retry_policy.for_tag_audit() if lag else None,
    )


def explain(
    exc: CommandFailed,
    what: str,
    registry: str,
    attempts: int,
    elapsed: float,
    policy: RetryPolicy,
) -> CommandFailed:
    """The same failure, its message naming the registry, the cause and what to check."""
    cause = exc.cause
    where = cause.service or registry
    if cause.kind == "permanent":
        message = f"{what} failed: {where} answered {cause.reason} ({cause.line})"
        hint = HINTS.get(f"{cause.service} {cause.reason}") or HINTS.get(cause.reason, "")
        hint = hint.format(registry=where, what=what)
    elif policy.retries(cause):
        message = (
            f"{what} failed after {attempts} attempt{'s' if attempts > 1 else ''} in "
            f"{elapsed:.0f}s: {where} kept failing ({cause.describe})"
        )
        hint = (
            f"{where} may be down or rate limiting; retry later, or raise "
            "provenance.retry_attempts / provenance.retry_budget"
        )
    else:
        return exc  # not a registry failure we know: the tool's own words say it best
    return exc.with_message(message, hint=hint)
