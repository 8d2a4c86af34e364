"""The run's log: steps recorded for the summary, and the deferred log of the steps that run
beside the preflight (kept until it passes, then printed in order and live)."""

from __future__ import annotations

import io

import pytest

from provenance_tasks.errors import CommandFailed, InputError
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


@pytest.mark.parametrize("streamed", [True, False])
def test_a_tools_stderr_is_printed_once(streamed: bool) -> None:
    """Streamed into the step's section, the summary points there; a probe's stderr, which no
    section showed, is printed in the summary."""
    from provenance_tasks.adapters.process import run

    log, out = console()
    sink = log.tool_output("sign") if streamed else None
    failure = None
    with pytest.raises(CommandFailed), log.step("sign", "Sign it"):
        try:
            run(
                ["sh", "-c", "echo 'Error: the signer is broken' >&2; exit 1"],
                redactor=Redactor([]),
                on_line=sink,
            )
        except CommandFailed as exc:
            failure = exc
            raise
    assert failure is not None
    log.finish(failure)
    text = out.getvalue()
    assert text.count("Error: the signer is broken") == 2  # the section, or the summary's tail
    assert ("its stderr: above, in the sign section" in text) == streamed
    assert ("last lines of its stderr" in text) == (not streamed)
