"""The console script's way out: main()'s exit code, its streams flushed, and no interpreter
teardown, except where a thread still runs or a bug's traceback is due."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from provenance_tasks import cli

# The console script, as pip writes it, with the arguments after -c as its own.
CONSOLE = (
    "import sys; sys.argv = ['provenance-tasks', *sys.argv[1:]]; "
    "from provenance_tasks.cli import console; console()"
)


def console(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CONSOLE, *args], capture_output=True, text=True, timeout=60
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


def exit_code_of(monkeypatch: pytest.MonkeyPatch, main: object) -> int:
    """The code console() hands os._exit when main() is `main`: caught, not exited with."""
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise _Left

    monkeypatch.setattr(cli, "main", main)
    monkeypatch.setattr(os, "_exit", fake_exit)
    with pytest.raises(_Left):
        cli.console()
    assert len(codes) == 1
    return codes[0]


def test_a_string_exit_is_printed_and_exits_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def main() -> None:
        sys.exit("provenance-tasks: went wrong")

    assert exit_code_of(monkeypatch, main) == 1
    assert "went wrong" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("raised", "code"),
    [(None, 0), (SystemExit(None), 0), (SystemExit(2), 2), (SystemExit(143), 143)],
)
def test_each_exit_code_of_main_is_the_process_s(
    monkeypatch: pytest.MonkeyPatch, raised: SystemExit | None, code: int
) -> None:
    def main() -> None:
        if raised is not None:
            raise raised

    assert exit_code_of(monkeypatch, main) == code


def test_a_stream_that_cannot_be_flushed_exits_120_and_the_other_is_still_flushed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    flushed: list[str] = []

    class Closed:
        def flush(self) -> None:
            raise BrokenPipeError(32, "Broken pipe")

    class Open:
        def flush(self) -> None:
            flushed.append("stderr")

    monkeypatch.setattr(sys, "stdout", Closed())
    monkeypatch.setattr(sys, "stderr", Open())
    assert exit_code_of(monkeypatch, lambda: None) == 120
    assert flushed == ["stderr"]


def test_no_standard_output_at_all_is_no_error() -> None:
    """`provenance-tasks --version >&-`: Python has no sys.stdout then (None), and print()
    writes nothing; the way out must not trip over it either."""
    closed = subprocess.run(
        ["sh", "-c", f'"{sys.executable}" -c "{CONSOLE}" --version >&-'],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "Traceback" not in closed.stderr
    assert closed.returncode == 0


def test_a_one_image_run_imports_neither_the_set_nor_the_attestation_steps() -> None:
    """They are imported where a set or an attestation needs them: 13 ms of every run's start,
    before its first tool, otherwise. python-on-whales (pydantic underneath) waits for the first
    docker step too."""
    probe = (
        "import sys; import provenance_tasks.tasks, provenance_tasks.steps.pipeline; "
        "print(' '.join(m for m in ('provenance_tasks.steps.sets.run', "
        "'provenance_tasks.steps.sets.bake', 'provenance_tasks.steps.attest', "
        "'python_on_whales', 'pydantic') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.parametrize("argv", [["--list"], ["--help"], ["--version"], ["build", "--help"]])
def test_list_help_and_version_never_import_python_on_whales(argv: list[str]) -> None:
    """Its import costs a few tenths of a second: paid when a docker step first runs."""
    probe = (
        "import sys\n"
        "from provenance_tasks.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('loaded:', 'python_on_whales' in sys.modules, 'pydantic' in sys.modules, "
        "file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip(), done.stderr  # it did list, help or say its version
    assert done.stderr.strip().splitlines()[-1] == "loaded: False False"


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


def test_version_names_the_job_image_s_tools_when_it_runs_there(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = tmp_path / "versions"
    listed.write_text("provenance-tasks 0.1.0\ncosign2 2.5.0-2+b5\ncosign3 3.1.1-2\n")
    monkeypatch.setattr(cli, "JOB_IMAGE_VERSIONS", str(listed))
    program = cli.ProvenanceProgram(version="0.1.0", name="provenance-tasks")
    program.print_version()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "provenance-tasks 0.1.0"  # the line the components grep -x for
    assert lines[1:] == [
        "in the job image, each checked at its build:",
        "  cosign2 2.5.0-2+b5",
        "  cosign3 3.1.1-2",
    ]


def test_version_elsewhere_is_the_tool_s_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "JOB_IMAGE_VERSIONS", str(tmp_path / "absent"))
    cli.ProvenanceProgram(version="0.1.0", name="provenance-tasks").print_version()
    assert capsys.readouterr().out == "provenance-tasks 0.1.0\n"
