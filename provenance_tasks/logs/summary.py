"""The end of a run in a few lines: each step's status and time, the digest, the verdict.

On failure it names the failing step, its command (redacted) and the last lines of the tool's
stderr, so the reason is on screen without scrolling back through a collapsed build log; a
stderr already printed in the step's section is pointed at, not printed twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class StepStatus:
    name: str
    status: str  # ok, failed, not run
    duration_s: float | None


@dataclass(frozen=True)
class Failure:
    step: str | None
    message: str
    exit_code: int
    command: str | None = None
    stderr_tail: tuple[str, ...] = ()
    hint: str | None = None
    stderr_shown: bool = False  # the tool's stderr is in the step's section: not repeated


@dataclass(frozen=True)
class ImageRow:
    """One image of a set, as the summary shows it."""

    name: str
    status: str  # ok, failed, not run
    image: str | None = None
    digest: str | None = None
    verified: bool | None = None
    failure: Failure | None = None

    def as_event(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "image": self.image,
            "digest": self.digest,
            "verified": self.verified,
            "failure": _failure_event(self.failure) if self.failure else None,
        }


def _failure_event(failure: Failure) -> dict[str, Any]:
    return {
        "step": failure.step,
        "message": failure.message,
        "hint": failure.hint,
        "exit_code": failure.exit_code,
        "command": failure.command,
        "stderr_tail": list(failure.stderr_tail),
        "stderr_shown": failure.stderr_shown,
    }


@dataclass(frozen=True)
class RunSummary:
    steps: tuple[StepStatus, ...]
    image: str | None = None
    digest: str | None = None
    verified: bool | None = None  # None: verify did not run
    failure: Failure | None = None
    dry_run: bool = False  # the steps were planned and shown, not run
    images: tuple[ImageRow, ...] = ()  # a set of images: a row each

    @property
    def status(self) -> str:
        return "failed" if self.failure else "ok"

    def as_event(self) -> dict[str, Any]:
        """The summary as one structured record, the last a log pipeline reads."""
        record: dict[str, Any] = {
            "status": self.status,
            "steps": [
                {"name": s.name, "status": s.status, "duration_s": s.duration_s} for s in self.steps
            ],
            "image": self.image,
            "digest": self.digest,
            "verified": self.verified,
            "dry_run": self.dry_run,
            "duration_s": round(sum(s.duration_s or 0.0 for s in self.steps), 2),
        }
        if self.images:
            record["images"] = [row.as_event() for row in self.images]
        if self.failure:
            record["failure"] = _failure_event(self.failure)
        return record

    def lines(self) -> list[str]:
        """The summary as a small table for people."""
        width = max([len(s.name) for s in self.steps] + [6])
        out = [f"{'step':<{width}}  {'status':<8}  time"] if self.steps or not self.images else []
        for s in self.steps:
            took = f"{s.duration_s:.1f}s" if s.duration_s is not None else "-"
            out.append(f"{s.name:<{width}}  {s.status:<8}  {took:>5}")
        out += self._image_lines()
        if self.dry_run:
            out.append("DRY RUN: the commands above were shown, not run; nothing pushed or signed")
        elif self.image and self.digest:
            out.append(f"image: {self.image}@{self.digest}")
        if self.verified is not None:
            out.append("verification: " + ("VERIFIED" if self.verified else "FAILED"))
        if self.failure:
            where = f" in step {self.failure.step}" if self.failure.step else ""
            out.append(f"FAILED{where} (exit {self.failure.exit_code})")
            if self.failure.command:
                out.append(f"command: {self.failure.command}")
            if self.failure.stderr_shown and self.failure.step:
                out.append(f"its stderr: above, in the {self.failure.step} section")
            elif self.failure.stderr_tail:
                out.append("last lines of its stderr:")
                out += [f"  {line}" for line in self.failure.stderr_tail]
        return out

    def _image_lines(self) -> list[str]:
        """A row per image of a set, then why each failed one failed."""
        if not self.images:
            return []
        width = max(len(row.name) for row in (*self.images, ImageRow("image", "")))
        out = [f"{'image':<{width}}  {'status':<8}  verified  reference"]
        for row in self.images:
            verified = {True: "yes", False: "NO", None: "-"}[row.verified]
            ref = f"{row.image}@{row.digest}" if row.image and row.digest else (row.image or "-")
            out.append(f"{row.name:<{width}}  {row.status:<8}  {verified:<8}  {ref}")
        for row in self.images:
            if row.failure:
                where = f" in step {row.failure.step}" if row.failure.step else ""
                out.append(
                    f"{row.name}: FAILED{where} (exit {row.failure.exit_code}): "
                    f"{row.failure.message}"
                )
                if row.failure.hint:
                    out.append(f"  fix: {row.failure.hint}")
                if row.failure.stderr_shown and row.failure.step:
                    out.append(f"  its stderr: above, in {row.name}'s {row.failure.step} section")
        return out
