"""The retry policy: classification of real tool stderr, waits, budget, and what is never retried.

The fixtures in fixtures/stderr are the real stderr of docker, buildx, cosign 2.x and 3.x and
crane failing against the fault proxy (see fixtures/stderr/README.md). A fixture's name ends in the
fault that caused it, which decides what the classifier must say.
"""

from __future__ import annotations

import datetime
import email.utils
import re
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.adapters.registry.failures import failure
from provenance_tasks.causes import Cause, classify
from provenance_tasks.errors import CommandFailed
from provenance_tasks.logs import StepLog
from provenance_tasks.retry import RetryPolicy, with_retries
from provenance_tasks.settings import resolve

FIXTURES = Path(__file__).parent / "fixtures" / "stderr"
EXPECTED_KIND = {
    "500": "transient",
    "502": "transient",
    "503": "transient",
    "503-manifest-put": "transient",
    "drop": "transient",
    "reset": "transient",
    "refused": "transient",
    "timeout": "transient",
    "429": "rate-limited",
    "snapshot-race": "transient",
    "401": "permanent",
    "403": "permanent",
    "unauthenticated": "permanent",
    "invalid-reference": "permanent",
    "400-name-invalid": "permanent",
    "400-manifest-invalid": "permanent",
    "manifest-unknown": "not-yet-there",
    "name-unknown": "not-yet-there",
    "no-signatures": "unknown",
}
# cosign verify of a digest the registry doesn't have says "no signatures found": a verdict.
OVERRIDES = {
    "cosign2-verify-manifest-unknown": "unknown",
    "cosign3-verify-manifest-unknown": "unknown",
}


def fixture_cases() -> list[Any]:
    cases = []
    for path in sorted(FIXTURES.glob("*.txt")):
        code, _ = read_fixture(path)
        if code == 0:
            continue  # cosign signs a digest the registry lacks without complaint: no failure
        faults = [f for f in EXPECTED_KIND if path.stem.endswith("-" + f)]
        assert faults, f"{path.name}: which fault is it? add it to EXPECTED_KIND"
        fault = max(faults, key=len)
        kind = OVERRIDES.get(path.stem, EXPECTED_KIND[fault])
        cases.append(pytest.param(path, kind, id=path.stem))
    return cases


def read_fixture(path: Path) -> tuple[int, str]:
    text = path.read_text()
    code = int(re.search(r"^# exit: (-?\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    stderr = "\n".join(line for line in text.splitlines() if not line.startswith("# "))
    return code, stderr


def test_there_are_fixtures_for_every_tool_and_fault_family() -> None:
    names = {path.stem for path in FIXTURES.glob("*.txt")}
    for tool in ("buildx-push", "imagetools-inspect", "cosign2-sign", "cosign3-verify"):
        assert any(name.startswith(tool) for name in names), tool
    for fault in ("503", "429", "401", "403"):
        assert any(name.endswith(fault) for name in names), fault


@pytest.mark.parametrize(("path", "kind"), fixture_cases())
def test_real_stderr_is_classified_by_the_fault_behind_it(path: Path, kind: str) -> None:
    code, stderr = read_fixture(path)
    cause = classify(stderr, code)
    assert cause.kind == kind, f"{path.name}: {cause}"
    assert cause.line  # the stderr line it read the cause from, for the log


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        (
            "Error: signing: GET https://r.example/v2/: UNAUTHORIZED: authentication required",
            "permanent",
        ),
        ("denied: requested access to the resource is denied", "permanent"),
        ("failed to push: 503 Service Unavailable\n401 Unauthorized", "permanent"),
        (
            "Error response from daemon: login attempt to http://r:5000/v2/ failed with status: "
            "400 Bad Request",
            "permanent",
        ),
        ("NAME_INVALID: invalid repository name", "permanent"),
        ("MANIFEST_INVALID: manifest invalid", "permanent"),
        ("TOOMANYREQUESTS: too many requests", "rate-limited"),
        ('Get "https://r/v2/": dial tcp 127.0.0.1:5000: connect: connection refused', "transient"),
        ("read: connection reset by peer", "transient"),
        ("Get https://r/v2/: EOF", "transient"),
        ("context deadline exceeded", "transient"),
        ("cosign: killed after 30s", "transient"),
        ("MANIFEST_UNKNOWN: manifest unknown", "not-yet-there"),
        ("Error: no matching signatures: invalid signature", "unknown"),
        ("Error: decrypting key: encrypted: decryption failed", "unknown"),
        # A digest or a port full of status-like digits is not a status.
        ("pushing sha256:5034010429aa4030 to 127.0.0.1:50340 failed: invalid signature", "unknown"),
    ],
)
def test_classification_of_known_phrases(stderr: str, kind: str) -> None:
    assert classify(stderr).kind == kind


def test_the_verdict_at_the_end_of_a_build_log_decides_not_words_inside_it() -> None:
    log = "\n".join(
        ["#5 [2/3] RUN ./fetch", "#5 0.2 curl: (22) 401 Unauthorized, access denied, retrying"]
        + [f"#6 exporting layer {n}" for n in range(20)]
        + ["ERROR: failed to solve: failed to push r/app:v1: 503 Service Unavailable"]
    )
    assert classify(log).kind == "transient"


def no_jitter() -> float:
    return 0.0


def test_waits_double_up_to_the_cap_and_start_longer_after_a_rate_limit() -> None:
    policy = RetryPolicy(wait_s=1, max_wait_s=8, rate_limit_wait_s=5, jitter=no_jitter)
    transient, limited = Cause("transient", "5xx"), Cause("rate-limited", "429")
    assert [policy.wait(n, transient) for n in range(1, 6)] == [1, 2, 4, 8, 8]
    assert [policy.wait(n, limited) for n in range(1, 4)] == [5, 8, 8]


@pytest.mark.parametrize(
    "stderr",
    ["read tcp 127.0.0.1:5000: read: connection reset by peer", "Patch http://r.test/v2/: EOF"],
)
def test_a_dropped_connection_is_retried_sooner_twice_then_waits_as_any_failure(
    stderr: str,
) -> None:
    policy = RetryPolicy(jitter=no_jitter)
    dropped = classify(stderr)
    assert dropped.said_nothing
    assert [policy.wait(n, dropped) for n in range(1, 6)] == [0.25, 0.5, 4, 8, 16]
    assert not classify("503 Service Unavailable").said_nothing
    assert not classify("dial tcp: connection refused").said_nothing  # a registry that is down


def test_a_dropped_connections_jitter_is_in_proportion_to_its_wait() -> None:
    policy = RetryPolicy(jitter=lambda: 0.999)
    dropped = classify("connection reset by peer")
    assert policy.wait(1, dropped) < 0.5  # not the full second that spreads longer waits
    assert policy.wait(3, dropped) == pytest.approx(4.999)


def test_a_retry_after_from_the_registry_is_never_cut_short() -> None:
    policy = RetryPolicy(jitter=no_jitter)
    said = failure(
        "PUT",
        "https://r.test/v2/app/blobs/uploads/x?state=secret",
        503,
        "Service Unavailable",
        retry_after="12",
    ).stderr
    assert "(retry after 12s)" in said and "secret" not in said
    cause = classify(said)
    assert (cause.kind, cause.retry_after_s) == ("transient", 12.0)
    assert policy.wait(1, cause) == 12.0  # not the policy's 1 s
    assert policy.wait(5, cause) == 16.0  # nor less than its own backoff
    limited = classify(
        failure("GET", "https://r.test/v2/", 429, "Too Many Requests", retry_after="1").stderr
    )
    assert policy.wait(1, limited) == 5.0  # a rate limit keeps its longer wait


def test_a_retry_after_as_an_http_date_or_unreadable() -> None:
    soon = email.utils.format_datetime(
        datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=30), usegmt=True
    )
    cause = classify(
        failure("GET", "https://r.test/v2/", 503, "Unavailable", retry_after=soon).stderr
    )
    assert cause.retry_after_s is not None and 25 <= cause.retry_after_s <= 30
    garbled = failure("GET", "https://r.test/v2/", 503, "Unavailable", retry_after="soon").stderr
    assert classify(garbled).retry_after_s is None and "retry after" not in garbled


def test_the_worst_case_of_the_defaults_is_what_the_readme_says() -> None:
    policy = RetryPolicy()
    assert policy.attempts == 8 and policy.budget_s == 300
    # 1+2+4+8+16+30+30 seconds of waits, plus at most a second of jitter each
    assert policy.worst_case_waits() == 98
    assert policy.worst_case_waits(rate_limited=True) == 5 + 10 + 20 + 30 * 4 + 7


# --- with_retries, with calls that run no tool: they are plain functions -------------------------


def configured(**settings: Any) -> RetryPolicy:
    """The policy a run's settings make (tools/run.py builds it the same way)."""
    return RetryPolicy.from_settings(
        resolve({}, {"retry_wait": 1, "rate_limit_wait": 5, **settings}, {})
    )


def log() -> StepLog:
    return StepLog({})


def failing(*stderrs: str, result: str = "done") -> Any:
    """A call that fails with each stderr in turn, then returns `result`."""
    left = list(stderrs)
    calls: list[float] = []

    def call(seconds_left: float) -> str:
        calls.append(seconds_left)
        if left:
            raise CommandFailed("tool", ["tool", "push"], 1, left.pop(0))
        return result

    call.calls = calls  # type: ignore[attr-defined]
    return call


def test_transient_failures_are_retried_with_the_policys_waits(tmp_path: Path) -> None:
    slept: list[float] = []
    call = failing("503 Service Unavailable", "EOF", "TOOMANYREQUESTS")
    policy = RetryPolicy(jitter=no_jitter)
    assert (
        with_retries(log(), policy, "build", "push", "r.test", call, sleep=slept.append) == "done"
    )
    # A 503 waits a second; a dropped connection (EOF, no answer) retries sooner: 0.25 * 2; the
    # third wait follows a rate limit: 5 * 2**2.
    assert slept == [1.0, 0.5, 20.0]
    assert len(call.calls) == 4
    assert all(left <= 300 for left in call.calls)


@pytest.mark.parametrize("stderr", ["401 Unauthorized", "denied: access forbidden", "NAME_INVALID"])
def test_permanent_failures_fail_at_once_naming_registry_and_what_to_check(
    tmp_path: Path, stderr: str
) -> None:
    slept: list[float] = []
    call = failing(stderr)
    with pytest.raises(CommandFailed) as caught:
        with_retries(
            log(), configured(), "build", "push to r.test/app", "r.test", call, sleep=slept.append
        )
    assert slept == [] and len(call.calls) == 1
    assert "r.test" in caught.value.message and caught.value.hint
    assert caught.value.command == "tool push"  # the summary still shows the command


def test_unrecognised_failures_are_not_retried_and_keep_the_tools_words(tmp_path: Path) -> None:
    call = failing("Error: no matching signatures")
    with pytest.raises(CommandFailed) as caught:
        with_retries(log(), configured(), "verify", "verify", "r.test", call, sleep=lambda _: None)
    assert len(call.calls) == 1
    assert caught.value.message == "tool failed (exit 1): Error: no matching signatures"


def test_attempts_are_bounded_and_the_message_says_how_many(tmp_path: Path) -> None:
    call = failing(*["503 Service Unavailable"] * 10)
    policy = RetryPolicy(attempts=3, jitter=no_jitter)
    with pytest.raises(CommandFailed) as caught:
        with_retries(log(), policy, "sign", "sign r.test/app", "r.test", call, sleep=lambda _: None)
    assert len(call.calls) == 3
    assert "after 3 attempts" in caught.value.message and "kept failing" in caught.value.message
    assert "retry_budget" in (caught.value.hint or "")


class Clock:
    """Time that passes only when the code under test sleeps, or when a call takes a while."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_no_attempt_starts_when_its_wait_would_end_past_the_budget(tmp_path: Path) -> None:
    clock = Clock()
    policy = RetryPolicy(attempts=10, budget_s=10, wait_s=2, jitter=no_jitter)
    stderrs = ["503 Service Unavailable"] * 10

    def slow_failure(seconds_left: float) -> str:
        clock.now += 1.0  # each attempt takes a second
        raise CommandFailed("tool", ["tool"], 1, stderrs.pop())

    with pytest.raises(CommandFailed) as caught:
        with_retries(
            log(), policy, "sign", "sign", "r.test", slow_failure, sleep=clock.sleep, clock=clock
        )
    # attempt 1 (t=1), wait 2, attempt 2 (t=4), wait 4, attempt 3 (t=9): another wait of 8 plus
    # a one-second attempt would end at 18, past the 10-second budget, so it stops there.
    assert len(stderrs) == 7 and clock.now == 9.0
    assert "after 3 attempts" in caught.value.message


def test_each_attempt_is_told_how_much_budget_is_left(tmp_path: Path) -> None:
    clock = Clock()
    call = failing("503 Service Unavailable", "503 Service Unavailable")
    policy = RetryPolicy(budget_s=100, wait_s=5, jitter=no_jitter)
    with_retries(log(), policy, "sign", "sign", "r.test", call, sleep=clock.sleep, clock=clock)
    assert call.calls == [100.0, 95.0, 85.0]  # what cosign's --timeout is cut to


def test_only_the_tag_audit_waits_for_a_tag_not_there_yet(tmp_path: Path) -> None:
    lag = "MANIFEST_UNKNOWN: manifest unknown"
    with pytest.raises(CommandFailed):
        with_retries(
            log(), configured(), "verify", "read", "r.test", failing(lag), sleep=lambda _: None
        )
    audit = configured().for_tag_audit()
    call = failing(lag, lag)
    assert (
        with_retries(log(), audit, "audit", "read", "r.test", call, sleep=lambda _: None) == "done"
    )
    assert audit.budget_s <= 30 and audit.attempts <= 5


def test_each_retry_is_logged_with_attempt_wait_and_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import structlog

    with structlog.testing.capture_logs() as logs:
        with_retries(
            log(),
            RetryPolicy(jitter=no_jitter),
            "build",
            "push to r.test/app",
            "r.test",
            failing("unexpected status: 503 Service Unavailable"),
            sleep=lambda _: None,
        )
    (retry,) = [entry for entry in logs if "retrying" in entry["event"]]
    assert retry["attempt"] == 1 and retry["wait_s"] == 1.0 and retry["step"] == "build"
    assert "503 Service Unavailable" in retry["cause"]
    assert retry["log_level"] == "warning"


def test_a_policy_comes_from_the_settings(tmp_path: Path) -> None:
    policy = configured(retry_attempts=3, retry_budget=42)
    assert (policy.attempts, policy.budget_s, policy.wait_s, policy.rate_limit_wait_s) == (
        3,
        42,
        1,
        5,
    )


def test_json_records_of_each_attempt_carry_its_number(tmp_path: Path) -> None:
    import io
    import json

    import structlog

    from provenance_tasks.logs import configure
    from provenance_tasks.logs import setup as log_setup

    out = io.StringIO()
    structlog.reset_defaults()
    log_setup._ours = False
    try:
        configure("json", {}, out)
        from provenance_tasks.redaction import Redactor
        from provenance_tasks.steps.runlog import RunLog

        run = RunLog({}, "json", out, Redactor())
        stderrs = ["503 Service Unavailable"]

        def call(_: float) -> str:
            run.tool_output("build")("stderr", "progress")
            if stderrs:
                raise CommandFailed("tool", ["tool"], 1, stderrs.pop())
            return "done"

        policy = RetryPolicy(jitter=no_jitter)
        with_retries(run, policy, "build", "push", "r.test", call, sleep=lambda _: None)
        run.info("after")
    finally:
        structlog.reset_defaults()
        log_setup._ours = False
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    lines = [r["attempt"] for r in records if r["event"] == "tool.output"]
    assert lines == [1, 2]
    assert records[-1]["event"] == "after" and records[-1]["attempt"] is None


@pytest.mark.parametrize(
    "stderr",
    [
        "failed to push ghcr.io/o/app: unexpected status from PUT request: 403 Forbidden: "
        "You have exceeded a secondary rate limit",
        "denied: 403 Forbidden (secondary rate limit)",
    ],
)
def test_ghcrs_secondary_rate_limit_is_a_rate_limit_not_a_refusal(stderr: str) -> None:
    assert classify(stderr, 1).kind == "rate-limited"


def test_any_other_403_still_fails_at_once() -> None:
    assert classify("unexpected status: 403 Forbidden", 1).kind == "permanent"
