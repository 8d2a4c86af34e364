"""The run's log: steps recorded for the summary, and the deferred log of the steps that run
beside the preflight (kept until it passes, then printed in order and live)."""

from __future__ import annotations

import io

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.redaction import Redactor
from provenance_tasks.steps.runlog import RunLog


def console() -> tuple[RunLog, io.StringIO]:
    out = io.StringIO()
    return RunLog({}, "console", out, Redactor(["hunter2"])), out


def test_a_failed_step_names_itself_in_the_summary() -> None:
    log, _ = console()
    log.plan(("build", "sign"))
    with pytest.raises(InputError), log.step("build", "Build it"):
        raise InputError("no Dockerfile", hint="pass --file")
    summary = log.summarize(InputError("no Dockerfile"))
    assert [(s.name, s.status) for s in summary.steps] == [("build", "failed"), ("sign", "not run")]
    assert summary.failure is not None and summary.failure.step == "build"


def test_a_deferred_log_prints_nothing_until_it_goes_live(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log, out = console()
    beside = log.deferred()
    with beside.step("build", "Build app"):
        beside.tool_output("build")("stderr", "#1 load build definition hunter2")
    seen = capsys.readouterr()
    assert out.getvalue() == seen.out == seen.err == ""  # bad input would stop here
    assert log.steps == []


def test_going_live_prints_what_was_kept_in_order_then_the_rest_as_it_comes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    log, out = console()
    beside = log.deferred()
    beside.start("build", "Build app", collapsed=True)
    beside.line("build", "stderr", "first")
    beside.go_live(log)
    kept = out.getvalue()
    assert kept.index("first") >= 0
    beside.line("build", "stderr", "second hunter2")  # after go_live: straight to the run's log
    text = out.getvalue()
    assert text.startswith(kept) and "second" in text[len(kept) :]
    assert "hunter2" not in text  # redacted on the way, kept or live


def test_steps_of_the_deferred_log_join_the_runs_records() -> None:
    log, _ = console()
    beside = log.deferred()
    with beside.step("login", "Log in"):
        pass
    beside.go_live(log)
    with beside.step("build", "Build"):  # still running when it went live: lands there too
        pass
    assert [r.name for r in log.steps] == ["login", "build"]
