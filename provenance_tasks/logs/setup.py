"""structlog's global configuration, fenced off here: set only when the host program has not.

A repository that imports our collection and configured structlog keeps its own pipeline; our
events then flow through it. When we configure, it is for one of two readers:

- console: people reading a terminal or a GitLab/GitHub job log; short lines, colour where the
  log viewer renders it;
- json: a log pipeline; one JSON object per line, each with the same core fields.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, MutableMapping
from typing import Any, ClassVar, TextIO

from provenance_tasks.ci._env import GITHUB, GITLAB

#: Fields every JSON record carries, None when they don't apply (yet).
CORE_FIELDS = ("step", "image", "digest", "attempt", "duration_s")

# Whether the current structlog configuration is ours, so a second run in one process may replace
# it (another format, another stream) while a host's configuration is never touched.
_ours = False


def add_core_fields(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Processor: a log pipeline finds the same keys in every record."""
    for key in CORE_FIELDS:
        event_dict.setdefault(key, None)
    return event_dict


class JobLogRenderer:
    """One short line per event: the event, then its fields; level words only when they matter.

    structlog's ConsoleRenderer writes a timestamp and a padded level on every line, which a CI
    log viewer (with its own timestamps) shows as noise in front of every step.
    """

    _STYLES: ClassVar[dict[str, str]] = {
        "warning": "\x1b[33m",
        "error": "\x1b[31;1m",
        "critical": "\x1b[31;1m",
    }
    _RESET, _KEY, _BOLD = "\x1b[0m", "\x1b[36m", "\x1b[1m"

    def __init__(self, colors: bool) -> None:
        self.colors = colors

    def __call__(self, _: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> str:
        event_dict.pop("timestamp", None)
        level = str(event_dict.pop("level", method_name))
        event = str(event_dict.pop("event", ""))
        if level in self._STYLES:
            event = f"{level}: {event}"
        fields = " ".join(
            f"{self._paint(key, self._KEY)}={value}"
            for key, value in event_dict.items()
            if value is not None
        )
        style = self._STYLES.get(level, self._BOLD)
        return self._paint(event, style) + (f" {fields}" if fields else "")

    def _paint(self, text: str, style: str) -> str:
        return f"{style}{text}{self._RESET}" if self.colors else text


def resolved_format(log_format: str) -> str:
    return "json" if log_format == "json" else "console"


def wants_colour(environ: Mapping[str, str], stream: TextIO) -> bool:
    if "NO_COLOR" in environ:
        return False
    # GitLab's and GitHub's log viewers render ANSI colours although the job's stream is no TTY.
    in_ci_viewer = GITLAB.detected(environ) or GITHUB.detected(environ)
    return in_ci_viewer or stream.isatty()


def configure(log_format: str, environ: Mapping[str, str], stream: TextIO | None = None) -> bool:
    """Set structlog up for a run unless the host program did; True when this call configured it."""
    global _ours
    import structlog

    if structlog.is_configured() and not _ours:
        return False
    out = stream or sys.stderr
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
    ]
    if resolved_format(log_format) == "json":
        processors += [
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            add_core_fields,
            structlog.processors.JSONRenderer(sort_keys=False),
        ]
    else:
        processors.append(JobLogRenderer(colors=wants_colour(environ, out)))
    structlog.configure(
        processors=processors,
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    _ours = True
    return True
