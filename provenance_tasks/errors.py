"""The errors that provenance-tasks raises, and the exit codes a CI job can branch on.

Every error carries what went wrong and what to do about it; one place at the edge (the invoke
tasks and the console script) turns them into a single message and an exit code, never a traceback.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from provenance_tasks.causes import Cause


class ProvenanceError(Exception):
    """Base of every error this package raises on purpose."""

    #: The process exit code when this error ends a run.
    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """What went wrong, then what to do about it."""
        if self.hint:
            return f"{self.message}\n  fix: {self.hint}"
        return self.message


class InputError(ProvenanceError):
    """Bad input or configuration: nothing was built, pushed or signed."""

    exit_code = 2


class VerificationError(ProvenanceError):
    """The image, its signatures or its annotations did not verify. `report` is what the
    verify expected and found (a VerifyReport or AttestReport), for the run's report."""

    exit_code = 3

    def __init__(self, message: str, *, hint: str | None = None, report: object = None) -> None:
        super().__init__(message, hint=hint)
        self.report = report


class ToolError(ProvenanceError):
    """A registry or tool failure that outlasted the retries."""

    exit_code = 4


def last_lines(text: str, count: int = 1) -> list[str]:
    """The last `count` non-blank lines of a tool's output, stripped: where its verdict is."""
    return [line.strip() for line in text.splitlines() if line.strip()][-count:]


class CommandFailed(ToolError):
    """A tool exited non-zero. Everything in it is already redacted.

    The message is one line (the tool, its exit code, its last stderr line); the command and the
    last lines of stderr ride along for the run's summary and for classifying the failure.
    """

    def __init__(
        self,
        tool: str,
        argv: Sequence[str],
        returncode: int,
        stderr: str,
        *,
        hint: str | None = None,
        streamed: bool = False,
    ) -> None:
        self.tool = tool
        # Its stderr was printed, line by line, in the step's section: the summary then points
        # there instead of printing it again.
        self.streamed = streamed
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr
        self.stderr_tail = tuple(last_lines(stderr, 8))
        last = f": {self.stderr_tail[-1]}" if self.stderr_tail else ""
        super().__init__(f"{tool} failed (exit {returncode}){last}", hint=hint)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)

    @functools.cached_property
    def cause(self) -> Cause:
        """Why it failed, read once from its stderr: what every retry decision reads."""
        from provenance_tasks.causes import classify  # causes imports this module

        return classify(self.stderr, self.returncode)

    def with_message(self, message: str, *, hint: str | None = None) -> CommandFailed:
        """The same failure (command, exit, stderr) told in other words."""
        explained = CommandFailed(
            self.tool, self.argv, self.returncode, self.stderr, hint=hint, streamed=self.streamed
        )
        explained.message = message
        explained.args = (message,)
        return explained
