"""The one way a tool runs: a timeout kills it, and a prompt exit is seen at once."""

from __future__ import annotations

import time

import pytest

from provenance_tasks.adapters.process import CommandFailed, run
from provenance_tasks.redaction import Redactor


def test_a_tool_past_its_timeout_is_killed_and_says_so() -> None:
    started = time.monotonic()
    with pytest.raises(CommandFailed) as caught:
        run(["sleep", "30"], redactor=Redactor(), timeout=0.3)
    assert time.monotonic() - started < 10
    assert caught.value.returncode < 0  # by a signal
    assert "killed after 0s" in caught.value.stderr


def test_a_tool_that_exits_within_its_timeout_runs_to_completion() -> None:
    done = run(["sh", "-c", "echo out; echo err >&2"], redactor=Redactor(), timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (0, "out\n", "err\n")
    assert "killed" not in done.stderr


def test_render_quotes_for_a_shell_redacts_and_prefixes_the_environment() -> None:
    import shlex

    from provenance_tasks.adapters.process import render

    redactor = Redactor(["s3cret-value"])
    argv = ["cosign", "sign", "-a", '"com.x=Doe, Jo"', "--key", "env://K", "pw=s3cret-value"]
    line = render(argv, redactor, {"DOCKER_CONFIG": "/tmp/my config"})
    assert shlex.split(line) == [
        "env",
        "DOCKER_CONFIG=/tmp/my config",
        "cosign",
        "sign",
        "-a",
        '"com.x=Doe, Jo"',
        "--key",
        "env://K",
        "pw=[MASKED]",
    ]
    assert "s3cret-value" not in line
    assert render(["docker", "login"], redactor) == "docker login"


def test_a_cancelled_run_ends_its_process_and_is_never_retried() -> None:
    import threading

    from provenance_tasks.redaction import Redactor

    cancel = threading.Event()
    threading.Timer(0.2, cancel.set).start()
    with pytest.raises(CommandFailed) as caught:
        run(["sleep", "30"], redactor=Redactor(), cancel=cancel)
    assert caught.value.returncode < 0  # killed, not waited for
    assert "cancelled by the run" in caught.value.stderr
    assert caught.value.cause.kind == "permanent"


def test_a_tool_that_fails_on_its_own_while_the_run_cancels_is_not_retried() -> None:
    """A 503 a moment before the kill: the run gave up, so its stderr's verdict is the cancel,
    and a retry after it never starts the tool."""
    import threading

    cancel = threading.Event()
    script = "echo 'POST /api/v1/signingCert returned 503 Service Unavailable' >&2; exit 1"
    cancel.set()  # set while nothing runs: the next attempt is refused before it starts
    with pytest.raises(CommandFailed) as refused:
        run(["sh", "-c", script], redactor=Redactor(), cancel=cancel)
    assert refused.value.cause.reason == "cancelled"

    def failing_as_cancelled() -> CommandFailed:
        ran = threading.Event()

        def on_line(stream: str, line: str) -> None:
            cancel.set()  # the run gives up while the tool is printing its own failure
            ran.set()

        with pytest.raises(CommandFailed) as caught:
            run(["sh", "-c", script], redactor=Redactor(), cancel=cancel, on_line=on_line)
        assert ran.is_set()
        return caught.value

    cancel.clear()
    failed = failing_as_cancelled()
    assert failed.returncode == 1  # it exited on its own
    assert failed.cause.reason == "cancelled", failed.stderr


def _niceness_of_child(**options: object) -> int:
    # Field 19 of /proc/PID/stat is the nice value: cut reads its own, as a child of the tool.
    script = "cut -d' ' -f19 /proc/self/stat"
    return int(run(["sh", "-c", script], redactor=Redactor(), **options).stdout)  # type: ignore[arg-type]


def test_a_yielding_tool_and_what_it_starts_run_nicer_and_the_caller_stays_as_it_was() -> None:
    import os

    from provenance_tasks.adapters.process import YIELDING_NICE

    before = os.getpriority(os.PRIO_PROCESS, 0)
    assert _niceness_of_child() == before
    assert _niceness_of_child(yielding=True) == min(19, before + YIELDING_NICE)
    assert os.getpriority(os.PRIO_PROCESS, 0) == before


def test_a_yielding_tool_that_is_not_there_fails_as_any_tool() -> None:
    with pytest.raises(CommandFailed) as caught:
        run(["no-such-tool-here"], redactor=Redactor(), yielding=True)
    assert caught.value.returncode == 127
