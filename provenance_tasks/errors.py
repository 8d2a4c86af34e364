"""The errors that provenance-tasks raises, and the exit codes a CI job can branch on.

Every error carries what went wrong and what to do about it; one place at the edge (the invoke
tasks and the console script) turns them into a single message and an exit code, never a traceback.
"""

from __future__ import annotations


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
    """The image, its signatures or its annotations did not verify."""

    exit_code = 3


class ToolError(ProvenanceError):
    """A registry or tool failure that outlasted the retries."""

    exit_code = 4

