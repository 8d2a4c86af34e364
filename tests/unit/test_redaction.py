"""Secrets stay out of every text that leaves the process: the Redactor, and run()'s failures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from provenance_tasks.adapters.process import CommandFailed, run
from provenance_tasks.errors import ToolError
from provenance_tasks.redaction import MASK, SECRET_VARIABLES, Redactor

SECRET = "SECRETVALUE"


# --- Redactor --------------------------------------------------------------------------------


def test_redact_masks_every_occurrence() -> None:
    redactor = Redactor([SECRET])
    text = f"token={SECRET} again {SECRET}{SECRET}"
    assert redactor.redact(text) == f"token={MASK} again {MASK}{MASK}"


def test_redact_masks_the_longest_secret_first() -> None:
    # Shorter first would leave "[MASKED]-suffix" and reveal the rest of the longer secret.
    redactor = Redactor(["abcd", "abcd-suffix-of-long-secret"])
    assert redactor.redact("x abcd-suffix-of-long-secret y abcd") == f"x {MASK} y {MASK}"


def test_redact_ignores_values_shorter_than_four_characters() -> None:
    redactor = Redactor(["abc", "", "1", "true"])
    assert redactor.secrets == frozenset({"true"})
    assert redactor.redact("abc 1 is true") == f"abc 1 is {MASK}"


def test_add_ignores_none_and_short_values() -> None:
    redactor = Redactor()
    redactor.add(None)
    redactor.add("xyz")
    assert redactor.secrets == frozenset()
    redactor.add("wxyz")
    assert redactor.secrets == frozenset({"wxyz"})


def test_add_also_masks_the_stripped_value() -> None:
    # A password read from a file keeps its newline; tools print it without.
    redactor = Redactor([f"{SECRET}\n"])
    assert redactor.redact(f"password is {SECRET}.") == f"password is {MASK}."


def test_redact_argv_masks_each_argument() -> None:
    redactor = Redactor([SECRET])
    argv = ["tool", f"--password={SECRET}", SECRET, "plain"]
    assert redactor.redact_argv(argv) == ["tool", f"--password={MASK}", MASK, "plain"]


@pytest.mark.parametrize(
    "name",
    [
        "CI_JOB_TOKEN",
        "CI_REGISTRY_PASSWORD",
        "SIGSTORE_ID_TOKEN",
        "COSIGN_PASSWORD",
        "GITHUB_TOKEN",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ],
)
def test_from_environ_masks_the_known_secret_variables(name: str) -> None:
    value = f"value-of-{name.lower()}"
    redactor = Redactor.from_environ({name: value, "HOME": "/home/someone", "USER": "someone"})
    assert redactor.secrets == frozenset({value})
    assert redactor.redact(f"echo {value}") == f"echo {MASK}"
    assert name in SECRET_VARIABLES


def test_from_environ_leaves_ordinary_variables_and_takes_extra_names() -> None:
    environ = {"HOME": "/home/someone", "MY_PASSWORD": "hunter22", "CI_JOB_TOKEN": ""}
    assert Redactor.from_environ(environ).secrets == frozenset()
    assert Redactor.from_environ(environ, extra=["MY_PASSWORD"]).secrets == {"hunter22"}


# --- run(): failures and streaming -----------------------------------------------------------


def failing_argv(secret: str) -> list[str]:
    script = (
        "import sys\n"
        f"print('stdout token={secret}')\n"
        f"print('token={secret}', file=sys.stderr)\n"
        "sys.exit(3)\n"
    )
    return [sys.executable, "-c", script, f"--password={secret}"]


def test_failing_command_raises_command_failed_without_the_secret() -> None:
    with pytest.raises(CommandFailed) as caught:
        run(failing_argv(SECRET), redactor=Redactor([SECRET]))
    exc = caught.value
    assert isinstance(exc, ToolError)
    assert exc.returncode == 3
    assert exc.tool == Path(sys.executable).name
    assert SECRET not in str(exc)
    assert SECRET not in exc.message
    assert not any(SECRET in arg for arg in exc.argv)
    assert SECRET not in exc.stderr
    # The redacted command and stderr are still there, so the failure can be understood.
    assert f"--password={MASK}" in exc.argv
    assert f"token={MASK}" in exc.stderr
    assert f"token={MASK}" in str(exc)
    assert "(exit 3)" in str(exc)


def test_unchecked_failure_returns_redacted_argv_and_stderr() -> None:
    done = run(failing_argv(SECRET), redactor=Redactor([SECRET]), check=False)
    assert done.returncode == 3
    assert not any(SECRET in arg for arg in done.argv)
    assert SECRET not in done.stderr
    assert f"token={MASK}" in done.stderr


def test_missing_tool_raises_command_failed_127_without_the_secret(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-such-tool")
    with pytest.raises(CommandFailed) as caught:
        run([missing, f"--token={SECRET}"], redactor=Redactor([SECRET]))
    assert caught.value.returncode == 127
    assert SECRET not in str(caught.value)
    assert caught.value.argv == (missing, f"--token={MASK}")


def test_on_line_receives_redacted_lines_from_both_streams() -> None:
    lines: list[tuple[str, str]] = []
    run(
        failing_argv(SECRET),
        redactor=Redactor([SECRET]),
        on_line=lambda stream, line: lines.append((stream, line)),
        check=False,
    )
    assert sorted(lines) == [("stderr", f"token={MASK}"), ("stdout", f"stdout token={MASK}")]


def test_on_line_receives_lines_while_the_tool_still_runs(tmp_path: Path) -> None:
    # The tool prints a line, then waits until the sink has seen it: buffering the output until
    # exit would make it time out and exit 1.
    seen = tmp_path / "seen"
    script = (
        "import os, sys, time\n"
        f"print('progress token={SECRET}', flush=True)\n"
        "deadline = time.monotonic() + 10\n"
        f"while not os.path.exists({str(seen)!r}):\n"
        "    if time.monotonic() > deadline:\n"
        "        sys.exit(1)\n"
        "    time.sleep(0.01)\n"
    )
    lines: list[str] = []

    def sink(stream: str, line: str) -> None:
        lines.append(line)
        seen.touch()

    done = run([sys.executable, "-c", script], redactor=Redactor([SECRET]), on_line=sink)
    assert done.returncode == 0
    assert lines == [f"progress token={MASK}"]


def test_variables_read_by_build_secret_specs_are_secrets() -> None:
    from provenance_tasks.redaction import secret_spec_variables

    specs = ["id=npm,env=NPM_TOKEN", "id=cfg,src=.npmrc", "env=OTHER,id=x", "id=plain"]
    assert secret_spec_variables(specs) == ["NPM_TOKEN", "OTHER"]
    redactor = Redactor.from_environ(
        {"NPM_TOKEN": "npm-secret-value", "HOME": "/root"}, extra=secret_spec_variables(specs)
    )
    assert redactor.redact("token npm-secret-value in /root") == f"token {MASK} in /root"
