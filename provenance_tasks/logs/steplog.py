"""How a run talks to people and log pipelines: one section per step, tool output inside it.

Each step opens a section (a GitLab collapsible section, a GitHub group, or a header on a terminal),
streams its tool's output into it as the lines come, and closes it; the step's result line is
written after the section ends, so it stays visible when a noisy step is collapsed. In JSON mode
every one of those is a structlog event instead, with the run's image, digest and attempt bound.

Everything printed passes through the run's Redactor and `neutralise()` here, whichever structlog
pipeline renders it (ours, or a host program's): callers redact too, this is the last line.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

from provenance_tasks.logs.markers import for_environment, neutralise, section_name
from provenance_tasks.logs.setup import resolved_format
from provenance_tasks.logs.summary import RunSummary
from provenance_tasks.redaction import Redactor


class StepLog:
    """Sections and records for the steps of one run."""

    def __init__(
        self,
        environ: Mapping[str, str],
        log_format: str = "auto",
        stream: TextIO | None = None,
        redactor: Redactor | None = None,
    ) -> None:
        import structlog

        self.stream = stream or sys.stderr
        self.redactor = redactor or Redactor()
        self.json = resolved_format(log_format) == "json"
        # Markers print unredacted: GitHub's mask lines must carry the value they mask.
        self.markers = for_environment(environ, log_format, self._print)
        self._log = structlog.get_logger("provenance_tasks")
        self._bound: dict[str, Any] = {}
        self._sections: set[str] = set()
        self._open: str | None = None
        self.section_prefix = ""  # one image of a set: its sections are named after it
        self.title_prefix = ""  # and titled with its name

    def mask(self, secrets: Iterable[str]) -> None:
        self.markers.mask(secrets)

    def bind(self, **fields: Any) -> None:
        """Fields of the run every later record carries (image, digest)."""
        self._bound.update(fields)

    # --- sections ---------------------------------------------------------------------------

    def start(self, step: str, title: str, *, collapsed: bool = True) -> None:
        if self.markers.name:
            title = self.title_prefix + title
        title = self._clean(title)
        self._open = section_name(f"{self.section_prefix}{step}", self._sections)
        self.markers.start(self._open, title, collapsed)
        if self.json:
            self._emit("info", "step.start", step=step, title=title, attempt=1)
        elif not self.markers.name:
            self._emit("info", f"▶ {step}: {title}")

    def line(self, step: str, stream: str, text: str) -> None:
        """One line of tool output, inside the step's section."""
        text = self._clean(text)
        if self.json:
            self._emit("info", "tool.output", step=step, stream=stream, line=text)
        else:
            self._raw(f"  {text}")

    def end(self, step: str, status: str, duration: float, **fields: Any) -> None:
        if self._open:
            self.markers.end(self._open)
            self._open = None
        level = "info" if status == "ok" else "error"
        took = round(duration, 2)
        if self.json:
            self._emit(level, "step.end", step=step, status=status, duration_s=took, **fields)
        else:
            # A failure's reason is in the section above and in the summary: not a third time.
            fields.pop("error", None)
            mark = "✔" if status == "ok" else "✘"
            self._emit(level, f"{mark} {step}: {status} in {took:.2f}s", **fields)

    # --- events -----------------------------------------------------------------------------

    def info(self, event: str, **fields: Any) -> None:
        self._emit("info", event, **fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._emit("warning", event, **fields)

    def summary(self, summary: RunSummary) -> None:
        """The last thing a run prints: a table for people, one event for machines."""
        level = "info" if summary.status == "ok" else "error"
        if self.json:
            self._emit(level, "run.summary", **summary.as_event())
            return
        self._raw("")
        self._emit(level, "Summary")
        for line in summary.lines():
            self._raw(f"  {line}")

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        # Image and digest go on every JSON record; people read them once, in the summary.
        values = {**self._bound, **fields} if self.json else fields
        clean = {key: self._clean_value(value) for key, value in values.items()}
        getattr(self._log, level)(self._clean(event), **clean)

    def _clean_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._clean(value)
        if isinstance(value, Mapping):
            return {k: self._clean_value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean_value(v) for v in value]
        return value

    def _clean(self, text: str) -> str:
        return neutralise(self.redactor.redact(text))

    def _raw(self, text: str) -> None:
        self._print(self._clean(text))

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)
