"""Sign and attest, verify and verify-attestation, side by side (steps/beside.py): when they run
in series, which failure ends the run, and that each side's lines stay its own.

The pairs here are plain functions: the real steps run side by side in the integration tests
(tests/integration/test_beside.py), against the test bed's Sigstore."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import pytest

from provenance_tasks.errors import CommandFailed, ToolError, VerificationError
from provenance_tasks.redaction import Redactor
from provenance_tasks.settings import resolve
from provenance_tasks.steps.beside import first_failure, pair, shares_referrers
from provenance_tasks.steps.pipeline import both
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog

INDEX = "registry.test/app:sha256-abc"


def started(tmp_path: Path, **settings: str | bool) -> tuple[Run, Tools, RunLog]:
    run = Run.start(resolve(dict(settings), {}), environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    return run, Tools(run), RunLog({}, "console", io.StringIO(), Redactor([]))


@pytest.mark.parametrize(
    ("bundle_format", "referrers", "series"),
    [
        ("classic", "auto", False),  # .sig and .att: two tags
        ("classic", "tag", False),
        ("new", "auto", True),  # both list their bundles in the fallback index
        ("both", "auto", True),
        ("both", "tag", True),  # the fallback index, typed, even with the API
        ("new", "api", False),  # preflight made sure of the API: each bundle its own manifest
        ("both", "api", False),
    ],
)
def test_sign_and_attest_share_referrers_only_where_both_write_the_fallback_index(
    bundle_format: str, referrers: str, series: bool
) -> None:
    settings = resolve({"bundle_format": bundle_format, "referrers": referrers}, {})
    why = shares_referrers(settings, INDEX)
    assert (why is not None) == series
    if why is not None:
        assert INDEX in why and bundle_format in why


def failed(stderr: str) -> CommandFailed:
    return CommandFailed("cosign", ["cosign", "verify"], 1, stderr)


def test_a_policy_failure_is_never_hidden_by_the_other_sides_failure() -> None:
    policy = VerificationError("no signature matches the policy")
    tool = failed("Error: 503 Service Unavailable")
    assert first_failure([tool, policy]) is policy
    assert first_failure([policy, tool]) is policy


def test_the_first_sides_failure_before_the_seconds_and_a_cancel_last() -> None:
    sign, attest = ToolError("sign failed"), ToolError("attest failed")
    assert first_failure([sign, attest]) is sign
    assert first_failure([None, attest]) is attest
    cancelled = failed("cosign: cancelled by the run")
    assert cancelled.cause.reason == "cancelled"
    assert first_failure([cancelled, attest]) is attest
    assert first_failure([None, None]) is None


def test_both_sides_run_at_once(tmp_path: Path) -> None:
    """Each side waits at a barrier for the other: in series the first would wait alone, and
    the barrier would break (its timeout only guards against a hang)."""
    _, tools, log = started(tmp_path)
    met = threading.Barrier(2, timeout=10)

    def side(name: str) -> str:
        met.wait()
        return name

    assert pair(tools, log, lambda _: side("sign"), lambda _: side("attest"), name="t") == (
        "sign",
        "attest",
    )


def test_a_failing_side_waits_for_the_other_then_stops_the_run(tmp_path: Path) -> None:
    """Awaited, not cancelled: the other side's verdict is a real one (here, a policy failure
    found after the first side failed) and nothing is killed."""
    _, tools, log = started(tmp_path)
    first_done = threading.Event()
    finished = []

    def first(_: RunLog) -> None:
        first_done.set()
        raise ToolError("sign failed: Rekor kept failing")

    def second(_: RunLog) -> None:
        first_done.wait(10)
        finished.append("second")
        raise VerificationError("the attestation doesn't satisfy the policy")

    with pytest.raises(VerificationError):
        pair(tools, log, first, second, name="t")
    assert finished == ["second"] and not tools.cancelled.is_set()


def test_each_side_prints_in_its_own_section_and_keeps_its_own_attempt(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The second side's lines come after the first side's section, whole; its retries bind
    their attempt on its own log, never on the run's (which the first side's retries bind)."""
    _, tools, log = started(tmp_path)
    second_said = threading.Event()

    def first(into: RunLog) -> None:
        into.bind(attempt=2)
        with into.step("sign", "Sign it"):
            second_said.wait(10)  # the second side prints while this section is open
            into.info("sign's line")

    def second(into: RunLog) -> None:
        into.bind(attempt=1)
        with into.step("attest", "Attest it"):
            into.info("attest's line")
        second_said.set()

    pair(tools, log, first, second, name="t")
    text = capsys.readouterr().out
    assert text.index("sign's line") < text.index("✔ sign") < text.index("▶ attest")
    assert text.index("▶ attest") < text.index("attest's line")
    assert [r.name for r in log.steps] == ["sign", "attest"]
    assert log._bound.get("attempt") == 2  # the second side's later bind never reached it


def test_an_interrupt_ends_the_other_side_and_goes_through(tmp_path: Path) -> None:
    _, tools, log = started(tmp_path)

    def first(_: RunLog) -> None:
        raise KeyboardInterrupt

    def second(_: RunLog) -> None:
        tools.cancelled.wait(10)  # a tool of the run, killed by the cancel

    with pytest.raises(KeyboardInterrupt):
        pair(tools, log, first, second, name="t")
    assert tools.cancelled.is_set()


def test_a_dry_run_and_shared_referrers_run_in_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    order: list[str] = []

    def step(name: str) -> object:
        def run_it(into: RunLog) -> str:
            order.append(f"{name} {threading.current_thread() is threading.main_thread()}")
            return name

        return run_it

    run, tools, log = started(tmp_path, dry_run=True)
    both(run, tools, log, step("sign"), step("attest"), name="sign and attest")
    run, tools, log = started(tmp_path, bundle_format="both")
    why = shares_referrers(run.settings, INDEX)
    both(run, tools, log, step("sign"), step("attest"), name="sign and attest", series=why)
    assert order == ["sign True", "attest True"] * 2
    said = f"sign and attest in series: both list bundles in the fallback index {INDEX}"
    assert said in capsys.readouterr().out


def test_each_sides_json_records_carry_its_own_attempt_and_the_image(tmp_path: Path) -> None:
    """In JSON, a retry's attempt is bound on the side's own log: the second side's records
    say its attempt, the first side's theirs, and both name the image."""
    import json

    import structlog

    from provenance_tasks.logs import configure
    from provenance_tasks.logs import setup as log_setup

    out = io.StringIO()
    structlog.reset_defaults()
    log_setup._ours = False
    try:
        configure("json", {}, out)
        run = Run.start(resolve({}, {}), environ={"HOME": str(tmp_path)}, cwd=tmp_path)
        log = RunLog({}, "json", out, Redactor([]))
        log.bind_image("registry.test/app", "sha256:" + "a" * 64)
        side_bound = threading.Event()

        def first(into: RunLog) -> None:
            side_bound.wait(10)
            into.bind(attempt=1)
            into.info("sign's line")

        def second(into: RunLog) -> None:
            into.bind(attempt=3)
            side_bound.set()
            into.info("attest's line")

        pair(Tools(run), log, first, second, name="t")
    finally:
        structlog.reset_defaults()
        log_setup._ours = False
    records = {r["event"]: r for r in map(json.loads, out.getvalue().splitlines())}
    assert records["sign's line"]["attempt"] == 1 and records["attest's line"]["attempt"] == 3
    assert records["attest's line"]["image"] == "registry.test/app"


def test_when_both_sides_fail_the_summary_names_the_step_whose_failure_ended_the_run(
    tmp_path: Path,
) -> None:
    _, tools, log = started(tmp_path)

    def first(into: RunLog) -> None:
        with into.step("sign", "Sign it"):
            raise ToolError("sign failed")

    def second(into: RunLog) -> None:
        with into.step("attest", "Attest it"):
            raise ToolError("attest failed")

    with pytest.raises(ToolError) as ended:
        pair(tools, log, first, second, name="t")
    assert ended.value.message == "sign failed"
    failure = log.summarize(ended.value).failure
    assert failure is not None and failure.step == "sign"
    assert [(r.name, r.status) for r in log.steps] == [("sign", "failed"), ("attest", "failed")]


def test_a_gitlab_section_of_the_second_side_never_starts_before_the_one_above_ended(
    tmp_path: Path,
) -> None:
    """GitLab's sections carry their time: the second side's is opened when it is printed,
    after the first side's section, so the job log's time never goes back."""
    import re

    run = Run.start(resolve({}, {}), environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    out = io.StringIO()
    log = RunLog({"GITLAB_CI": "true"}, "console", out, Redactor([]))
    ticks = iter(range(1, 100))
    first_may_go = threading.Event()

    def first(into: RunLog) -> None:
        first_may_go.wait(10)  # the second side's section opens first
        with into.step("sign", "Sign it"):
            pass

    def second(into: RunLog) -> None:
        into.markers.clock = lambda: next(ticks)
        log.markers.clock = into.markers.clock
        with into.step("attest", "Attest it"):
            first_may_go.set()

    pair(Tools(run), log, first, second, name="t")
    stamps = [int(t) for t in re.findall(r"section_(?:start|end):(\d+):", out.getvalue())]
    names = re.findall(r"section_(?:start|end):\d+:(\w+)", out.getvalue())
    assert names == ["sign", "sign", "attest", "attest"]
    assert stamps == sorted(stamps), stamps
