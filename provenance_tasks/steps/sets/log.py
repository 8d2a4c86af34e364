"""The log of one image of a set, among others printing at the same time.

Every line carries the image's name: a `[name]` prefix for people, an `image_name` field on JSON
records. A terminal shows each image's lines live, as they come. A CI log with sections (GitLab's
collapsible sections, GitHub's groups) can't interleave them, so there each image's output is kept
and printed whole when the image ends, its sections folding as a single image's would.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from provenance_tasks.logs import StepLog
from provenance_tasks.steps.runlog import RunLog


class ImageLog(RunLog):
    def __init__(self, parent: RunLog, name: str, lock: threading.Lock) -> None:
        environ, log_format, stream = parent._settings
        super().__init__(environ, log_format, stream, parent.redactor, masked=True)
        self.name = name
        self.dry_run = parent.dry_run
        self.section_prefix = f"{name}_"  # section names stay unique in the job's log
        self.title_prefix = f"[{name}] "  # a folded section shows its title only
        self._printing = lock  # one for the whole run: a line (or an image's output) at a time
        self._kept: list[Callable[[], None]] | None = [] if self.markers.name else None
        self.bind(image_name=name)

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        text = event if self.json else f"[{self.name}] {event}"
        bound = dict(self._bound)  # as it was when said, not when printed

        def write() -> None:
            values = {**bound, **fields} if self.json else fields
            clean = {key: self._clean_value(value) for key, value in values.items()}
            getattr(self._log, level)(self._clean(text), **clean)

        self._out(write)

    def _raw(self, text: str) -> None:
        line = self._clean(f"[{self.name}] {text}" if text else text)
        self._out(lambda: StepLog._print(self, line))

    def _print(self, text: str) -> None:
        self._out(lambda: StepLog._print(self, text))  # a marker line: printed as it is

    def _out(self, write: Callable[[], None]) -> None:
        with self._printing:
            if self._kept is not None:
                self._kept.append(write)
            else:
                write()

    def flush(self) -> None:
        """Print what was kept, whole, and print live from here on."""
        with self._printing:
            kept, self._kept = self._kept or [], None
            for write in kept:
                write()
