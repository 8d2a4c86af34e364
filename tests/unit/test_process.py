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
