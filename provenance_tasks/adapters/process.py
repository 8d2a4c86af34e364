"""The one way this package runs a tool: argv lists, secrets on stdin or in env, output redacted.

Tool output is handed line by line to `on_line` as it arrives (a long build shows its progress while
it runs), and a failure raises CommandFailed, whose message carries the redacted command and the
last lines of stderr, never a secret.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from provenance_tasks.errors import CommandFailed
from provenance_tasks.redaction import Redactor

LineSink = Callable[[str, str], None]  # (stream name, line) -> None
# The niceness of a check that runs beside the build (`yielding`): on a small CI machine the
# buildx client receiving the build's export and the check's key decryption want the same cores,
# and the run waits on the build, not on the check, which only has to be done by the push. It
# yields to the run's own processes (the scheduler weighs a session or cgroup as a whole): the
# engine, in its own, gets its share whatever the check's niceness.
YIELDING_NICE = 10

# CommandFailed lives in errors.py (the one tool-failure error); named here for the adapters.
__all__ = ["CommandFailed", "Completed", "LineSink", "render", "run"]


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]  # redacted
    returncode: int
    stdout: str
    stderr: str


def render(argv: Sequence[str], redactor: Redactor, env: Mapping[str, str] | None = None) -> str:
    """A command as a dry run shows it: redacted and shlex-quoted, so a line pasted into a shell
    hands the tool exactly this argv, with the (non-secret) variables that change what it does
    in front as `env NAME=value`."""
    words = redactor.redact_argv(argv)
    if env:
        words = ["env", *redactor.redact_argv(f"{k}={v}" for k, v in env.items()), *words]
    return shlex.join(words)


def run(
    argv: Sequence[str],
    *,
    redactor: Redactor,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    on_line: LineSink | None = None,
    timeout: float | None = None,
    check: bool = True,
    cancel: threading.Event | None = None,
    yielding: bool = False,
) -> Completed:
    """Run argv; secrets must come in `env` or `stdin`, never in argv. `yielding`: at a lower
    priority (YIELDING_NICE), every thread of the tool."""
    tool = argv[0].rsplit("/", 1)[-1]
    shown = redactor.redact_argv(argv)

    def start() -> subprocess.Popen[str]:
        return subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=dict(env) if env is not None else None,
            text=True,
            encoding="utf-8",
            errors="replace",
        )

    if cancel is not None and cancel.is_set():  # a retry after the run gave up: never started
        raise CommandFailed(tool, shown, -9, f"{tool}: cancelled by the run")
    try:
        # Linux only: elsewhere a process's niceness is the whole process's (the caller's too).
        process = _started_nicer(start) if yielding and sys.platform == "linux" else start()
    except FileNotFoundError as exc:
        raise CommandFailed(tool, shown, 127, f"{tool}: not found on PATH") from exc
    except OSError as exc:  # not executable here (a wrong architecture, no exec permission)
        raise CommandFailed(tool, shown, 126, f"{argv[0]}: cannot run: {exc.strerror}") from exc
    captured: dict[str, list[str]] = {"stdout": [], "stderr": []}

    def pump(name: str, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            captured[name].append(line)
            if on_line is not None:
                on_line(name, redactor.redact(line.rstrip("\n")))

    readers = [
        threading.Thread(target=pump, args=(name, stream), daemon=True)
        for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))
    ]
    for reader in readers:
        reader.start()
    if stdin is not None:
        assert process.stdin is not None
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass
    # A blocking wait, and a timer that kills: wait(timeout=...) polls with sleeps of up to
    # 50 ms, which every tool call of a run would pay after its tool had already exited.
    killed = threading.Event()

    def kill() -> None:
        killed.set()
        process.kill()

    timer = threading.Timer(timeout, kill) if timeout is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    ended = threading.Event()
    cancelled = threading.Event()
    if cancel is not None:

        def stop_when_cancelled() -> None:
            # The run gave up on this process (a preflight failed beside it): end it now.
            while not ended.wait(0.05):
                if cancel.is_set():
                    cancelled.set()
                    process.kill()
                    return

        threading.Thread(target=stop_when_cancelled, daemon=True).start()
    try:
        returncode = process.wait()
    except BaseException:
        # ^C or SIGTERM reached this thread mid-wait: the tool must not outlive the run, which
        # removes the folders it reads (its docker config, its token) as it leaves.
        process.kill()
        process.wait()
        raise
    finally:
        ended.set()
        if timer is not None:
            timer.cancel()
    for reader in readers:
        reader.join()  # first: the verdict below is stderr's last line, which decides a retry
    # Cancelled while it ran, even if it failed on its own first (a 503 a moment before the
    # kill): a run that gave up retries nothing.
    if cancelled.is_set() or (cancel is not None and cancel.is_set() and returncode != 0):
        captured["stderr"].append(f"\n{tool}: cancelled by the run\n")
    elif killed.is_set():
        captured["stderr"].append(f"\n{tool}: killed after {timeout:.0f}s\n")
    result = Completed(
        tuple(shown),
        returncode,
        "".join(captured["stdout"]),
        redactor.redact("".join(captured["stderr"])),
    )
    if check and returncode != 0:
        raise CommandFailed(tool, shown, returncode, result.stderr, streamed=on_line is not None)
    return result


def _started_nicer(start: Callable[[], subprocess.Popen[str]]) -> subprocess.Popen[str]:
    """`start()` in a thread of its own made nicer first. On Linux niceness is a thread's, and
    a process inherits its parent thread's: so every thread the tool makes is nicer (setting a
    started process's would miss the threads a Go runtime has already made), and the thread,
    which could never be made less nice again, ends with the call."""
    box: list[subprocess.Popen[str] | BaseException] = []

    def nicer() -> None:
        try:
            with contextlib.suppress(OSError):  # not allowed here: at the usual priority, then
                niceness = os.getpriority(os.PRIO_PROCESS, 0)
                os.setpriority(os.PRIO_PROCESS, 0, min(19, niceness + YIELDING_NICE))
            box.append(start())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=nicer, name="nicer-start", daemon=True)
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]
