"""When a failed registry call is worth another attempt, and how long to keep trying.

Registries fail in ways that pass: 503s while a node restarts, 429 rate limits, dropped
connections, timeouts. They also fail in ways that never pass: wrong credentials (401), no right to
push (403, DENIED), a name or manifest the registry refuses. The CLIs we drive show neither the
status line nor a Retry-After header in any structured way, so `classify()` reads their exit and
stderr, and the policy waits longer after a rate limit. Anything it does not recognise is not
retried: a signing or verification failure must surface at once, not after minutes of retries.

cosign (through go-containerregistry) already retries 5xx answers itself, about three times within
a few seconds, and buildx retries some pushes: one of our attempts may be several of theirs, which
the default budget below allows for.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_base

from provenance_tasks.causes import Cause
from provenance_tasks.errors import CommandFailed

if TYPE_CHECKING:
    from provenance_tasks.settings import Settings

T = TypeVar("T")


class RateGate:
    """A 429 from a registry pauses every call of the run to it (each image of a set) for the
    wait it asked, instead of each image backing off on its own and hitting it again."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}
        self._lock = threading.Lock()

    def pause(self, registry: str, seconds: float, clock: Callable[[], float]) -> None:
        with self._lock:
            self._until[registry] = max(self._until.get(registry, 0.0), clock() + seconds)

    def hold(
        self, registry: str, sleep: Callable[[float], None], clock: Callable[[], float]
    ) -> float:
        """Wait out the registry's pause, if any; returns the seconds waited."""
        with self._lock:
            left = self._until.get(registry, 0.0) - clock()
        if left <= 0:
            return 0.0
        sleep(left)
        return left


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts, how long in all, and how long between them.

    Waits double from `wait_s` up to `max_wait_s`, with up to one second of jitter so parallel
    jobs don't retry in lockstep; after a rate limit they start at `rate_limit_wait_s`, and never
    end before what a Retry-After asked. After a connection dropped with no answer, the first
    two retries come sooner (`dropped_wait_s`, doubling, jitter in proportion), then the usual
    waits: patience for an outage is unchanged. An attempt is never started when its wait would
    end past the budget.
    """

    attempts: int = 8
    budget_s: float = 300.0
    wait_s: float = 1.0
    max_wait_s: float = 30.0
    rate_limit_wait_s: float = 5.0
    dropped_wait_s: float = 0.25
    retry_on: frozenset[str] = frozenset({"transient", "rate-limited"})
    jitter: Callable[[], float] = field(default=random.random, compare=False)
    gate: RateGate | None = field(default=None, compare=False)  # shared by the run's calls

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            attempts=settings.retry_attempts,
            budget_s=settings.retry_budget,
            wait_s=settings.retry_wait,
            rate_limit_wait_s=settings.rate_limit_wait,
            gate=RateGate(),
        )

    def wait(self, attempt: int, cause: Cause) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        if cause.said_nothing and attempt <= 2:
            return float(self.dropped_wait_s * 2 ** (attempt - 1) * (1.0 + self.jitter()))
        waited = self._backoff(attempt, cause.kind == "rate-limited") + self.jitter()
        if cause.retry_after_s is not None:  # the registry said when: never sooner
            waited = max(waited, min(cause.retry_after_s, self.budget_s))
        return waited

    def _backoff(self, attempt: int, rate_limited: bool) -> float:
        base = self.rate_limit_wait_s if rate_limited else self.wait_s
        return float(min(self.max_wait_s, base * 2 ** (attempt - 1)))

    def retries(self, cause: Cause) -> bool:
        return cause.kind in self.retry_on

    def worst_case_waits(self, rate_limited: bool = False) -> float:
        """The sum of the waits if every attempt fails (jitter at its maximum)."""
        total = sum(self._backoff(n, rate_limited) + 1.0 for n in range(1, self.attempts))
        return min(total, self.budget_s)

    def for_tag_audit(self) -> RetryPolicy:
        """The audit may also wait, briefly, for a tag the registry doesn't show yet."""
        return RetryPolicy(
            attempts=min(self.attempts, 5),
            budget_s=min(self.budget_s, 30.0),
            wait_s=0.5,
            max_wait_s=min(self.max_wait_s, 5.0),
            rate_limit_wait_s=self.rate_limit_wait_s,
            dropped_wait_s=self.dropped_wait_s,
            retry_on=self.retry_on | {"not-yet-there"},
            jitter=self.jitter,
            gate=self.gate,
        )


# --- the loop: tenacity's strategies, composed -----------------------------------------------

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


class RetryLog(Protocol):
    """What the loop tells the run's log: each retry, and the attempt the tool's lines are of."""

    def warning(self, event: str, **fields: Any) -> None: ...

    def bind(self, **fields: Any) -> None: ...


def with_retries(
    log: RetryLog,
    policy: RetryPolicy,
    step: str,
    what: str,
    registry: str,
    call: Callable[[float], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`call(seconds_left)` until it succeeds, fails for good, or the policy runs out."""
    budget = _Budget(clock)

    def log_retry(state: RetryCallState) -> None:
        cause = _cause(state)
        waited = state.next_action.sleep if state.next_action else 0.0
        if cause.kind == "rate-limited" and policy.gate is not None:
            policy.gate.pause(registry, waited, clock)  # every image's next call waits too
        log.warning(
            f"{what}: attempt {state.attempt_number} failed ({cause.reason}), "
            f"retrying in {waited:.1f}s",
            step=step,
            attempt=state.attempt_number,
            wait_s=round(waited, 2),
            cause=cause.describe,
        )

    def attempt() -> T:
        held = policy.gate.hold(registry, sleep, clock) if policy.gate is not None else 0.0
        if held:
            log.warning(
                f"{what}: waited {held:.1f}s, as {registry} rate limited this run",
                step=step,
                wait_s=round(held, 2),
            )
        begun = clock()
        budget.attempts += 1
        log.bind(attempt=budget.attempts)  # the tool's output lines carry their attempt
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
        log.bind(attempt=None)


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
