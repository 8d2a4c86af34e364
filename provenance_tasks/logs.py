"""How a run talks to people and log pipelines: structlog events, one section per step.

The host program's logging is its own: `configure()` sets structlog up only when nobody has yet.
Steps log through `StepLog`, which opens a section (a GitLab collapsible section, a GitHub group, or
a header on a terminal), streams tool output into it, and closes it with the step's status and time.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Mapping
from typing import Any, TextIO

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_WORKFLOW_COMMAND = re.compile(r"^(\s*)(::|##\[)")


def sanitize(line: str) -> str:
    """Untrusted text can't forge section markers or workflow commands: strip ESC/CR and kin."""
    line = _CONTROL.sub("", line)
    return _WORKFLOW_COMMAND.sub(lambda m: m.group(1) + m.group(2)[0] + " " + m.group(2)[1:], line)


def configure(log_format: str, environ: Mapping[str, str], stream: TextIO | None = None) -> None:
    """Set structlog up for a run, unless the host program already did."""
    import structlog

    if structlog.is_configured():
        return
    renderer: Any
    if resolved_format(log_format) == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        out = stream or sys.stderr
        colors = out.isatty() and "NO_COLOR" not in environ
        renderer = structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=0)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=False,
    )


def resolved_format(log_format: str) -> str:
    return "json" if log_format == "json" else "console"


def ci_markers(environ: Mapping[str, str], log_format: str) -> str:
    """Which section markers to print: "gitlab", "github" or "" (json and plain terminals)."""
    if log_format == "json":
        return ""
    if environ.get("GITLAB_CI") == "true":
        return "gitlab"
    if environ.get("GITHUB_ACTIONS") == "true":
        return "github"
    return ""


class StepLog:
    """Sections and records for the steps of one run."""

    def __init__(
        self, environ: Mapping[str, str], log_format: str = "auto", stream: TextIO | None = None
    ) -> None:
        import structlog

        self.stream = stream or sys.stderr
        self.markers = ci_markers(environ, log_format)
        self.json = resolved_format(log_format) == "json"
        self.log = structlog.get_logger("provenance_tasks")
        self._sections: set[str] = set()
        self._open: str | None = None

    def start(self, step: str, title: str, *, collapsed: bool = True) -> None:
        name = self._section_name(step)
        self._open = name
        if self.markers == "gitlab":
            flag = "[collapsed=true]" if collapsed else ""
            self._raw(f"\x1b[0Ksection_start:{int(time.time())}:{name}{flag}\r\x1b[0K{title}")
        elif self.markers == "github":
            self._raw(f"::group::{title}")
        self.log.info(f"{step}: {title}" if not self.json else "step.start", step=step)

    def line(self, step: str, stream: str, text: str) -> None:
        text = sanitize(text)
        if self.json:
            self.log.info("tool.output", step=step, stream=stream, line=text)
        else:
            self._raw(f"  {text}")

    def end(self, step: str, status: str, duration: float, **fields: Any) -> None:
        if self._open:
            if self.markers == "gitlab":
                self._raw(f"\x1b[0Ksection_end:{int(time.time())}:{self._open}\r\x1b[0K")
            elif self.markers == "github":
                self._raw("::endgroup::")
            self._open = None
        level = self.log.info if status == "ok" else self.log.error
        level(
            "step.end" if self.json else f"{step}: {status}",
            step=step,
            status=status,
            duration_s=round(duration, 2),
            **fields,
        )

    def info(self, event: str, **fields: Any) -> None:
        self.log.info(event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self.log.warning(event, **fields)

    def _section_name(self, step: str) -> str:
        base = re.sub(r"[^a-z0-9_.-]", "_", step.lower()) or "step"
        name, n = base, 1
        while name in self._sections:
            n += 1
            name = f"{base}_{n}"
        self._sections.add(name)
        return name

    def _raw(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
