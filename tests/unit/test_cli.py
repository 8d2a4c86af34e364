"""The console script's way out: main()'s exit code, its streams flushed, and no interpreter
teardown, except where a thread still runs or a bug's traceback is due."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

from provenance_tasks import cli


def console(*args: str) -> subprocess.CompletedProcess[str]:
    code = (
        "import sys; sys.argv = ['provenance-tasks', *sys.argv[1:]]; "
        "from provenance_tasks.cli import console; console()"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60
    )


def test_a_run_that_ends_well_exits_0_with_its_output_flushed() -> None:
    done = console("--version")
    assert done.returncode == 0
    assert done.stdout.startswith("provenance-tasks ")  # piped: block-buffered, then flushed


def test_bad_input_keeps_its_exit_code_and_message() -> None:
    done = console("build-sign-verify", "--log-format", "xml")
    assert done.returncode == 2
    assert "provenance-tasks: " in done.stderr
    assert "log_format" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_task_is_invoke_s_exit_1() -> None:
    done = console("no-such-task")
    assert done.returncode == 1
    assert "no-such-task" in done.stderr


class _Left(Exception):
    pass


def test_a_string_exit_is_printed_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise _Left

    def main() -> None:
        sys.exit("provenance-tasks: went wrong")

    monkeypatch.setattr(cli, "main", main)
    monkeypatch.setattr(os, "_exit", fake_exit)
    with pytest.raises(_Left):
        cli.console()
    assert codes == [1]
    assert "went wrong" in capsys.readouterr().err


def test_a_thread_still_running_gets_the_interpreter_s_exit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    worker = threading.Thread(target=release.wait)

    def main() -> None:
        worker.start()
        sys.exit(3)

    def fake_exit(code: int) -> None:
        raise AssertionError("os._exit would have killed the running thread")

    monkeypatch.setattr(cli, "main", main)
    monkeypatch.setattr(os, "_exit", fake_exit)
    try:
        with pytest.raises(SystemExit) as exited:
            cli.console()
        assert exited.value.code == 3
    finally:
        release.set()
        worker.join()


def test_the_console_script_is_console() -> None:
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["provenance-tasks"] == "provenance_tasks.cli:console"
