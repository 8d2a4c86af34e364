"""The log of one run: its sections (StepLog), a record of each step, the results the steps
returned, and the summary printed last, built from those records."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

from provenance_tasks.errors import CommandFailed, ProvenanceError
from provenance_tasks.logs import Failure, ImageRow, RunSummary, StepLog, StepStatus
from provenance_tasks.redaction import Redactor

if TYPE_CHECKING:
    from provenance_tasks.adapters.registry.traffic import Meter

_KEEPING = threading.Lock()


@dataclass
class StepRecord:
    name: str
    status: str = "running"  # running, ok, failed, skipped
    duration_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


class RunLog(StepLog):
    def __init__(
        self,
        environ: Mapping[str, str],
        log_format: str,
        stream: TextIO | None,
        redactor: Redactor,
        *,
        masked: bool = False,
    ) -> None:
        super().__init__(environ, log_format, stream, redactor)
        self._settings = (environ, log_format, stream)
        if not masked:
            self.mask(redactor.secrets)  # GitHub: before anything else is printed
        self.planned: tuple[str, ...] = ()  # the steps the task means to run
        self.steps: list[StepRecord] = []
        # What the steps returned, kept by the pipeline that called them, for the report:
        # source, build, rebuild, sign, attest, verify, attestations, referrers. The steps
        # themselves only return.
        self.results: dict[str, Any] = {}
        self.verified: bool | None = None  # the verify's verdict, for the summary
        self.dry_run = False  # a dry run's steps are "planned", its summary says DRY RUN
        self.image: str | None = None  # the repository this run works on, once known
        self.digest: str | None = None  # the digest it signs or verifies, once known
        # The tool's own registry requests while the run is open (api.Provenance opens it).
        self.traffic: Meter | None = None
        # The run a task continues (its outputs' run id); "" once planned with none, None
        # while the plan hasn't said (a task that fails before it may still join its run).
        self.run_id: str | None = None
        self.outputs: dict[str, str] | None = None  # what the dotenv got, for the report
        self.images: tuple[ImageRow, ...] = ()  # a set of images: its rows in the summary

    def keep(self, name: str, result: object) -> None:
        """`result` of step `name` in the report (a verify's verdict in the summary too)."""
        self.results[name] = result
        if name == "verify":
            self.verified = bool(getattr(result, "ok", False))

    def keep_rows(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Rows added to the report's `name` list (the referrers repaired, step by step)."""
        with _KEEPING:  # two steps side by side (steps/beside.py) may add at once
            self.results[name] = [*self.results.get(name, []), *rows]

    def detected(self, provider: str, detected: str) -> None:
        """The run's first line (after GitHub's masks): the CI it found itself in, so that a
        default taken from it is never a silent guess."""
        if self.json:
            self._emit("info", "run.start", provider=provider, detected=detected)
        else:
            self._raw(f"CI: {detected}")

    @contextmanager
    def step(self, name: str, title: str, *, collapsed: bool = True) -> Iterator[StepRecord]:
        record = StepRecord(name)
        self._record(record)
        self.start(name, title, collapsed=collapsed)
        started = time.monotonic()
        try:
            yield record
        except BaseException as exc:
            record.status = "failed"
            record.error = exc
            record.duration_s = time.monotonic() - started
            message = exc.message if isinstance(exc, ProvenanceError) else type(exc).__name__
            self.end(name, "failed", record.duration_s, error=message)
            raise
        record.status = "ok" if record.status == "running" else record.status
        record.duration_s = time.monotonic() - started
        self.end(name, record.status, record.duration_s, **record.detail)

    def _record(self, record: StepRecord) -> None:
        self.steps.append(record)

    def plan(self, steps: tuple[str, ...]) -> None:
        """The steps this run means to take; the summary lists those that never ran."""
        self.planned = steps

    def bind_image(self, repository: str, digest: str | None = None) -> None:
        """From here on every record names the image (and the digest, once there is one)."""
        self.image = repository
        self.digest = digest or self.digest
        self.bind(image=self.image, digest=self.digest)

    def tool_output(self, step: str) -> Any:
        """A line sink that streams a tool's output into the step's section."""

        def sink(stream: str, line: str) -> None:
            self.line(step, stream, self.redactor.redact(line))

        return sink

    def deferred(self) -> DeferredLog:
        """A log for steps that run beside the preflight (see DeferredLog)."""
        environ, log_format, stream = self._settings
        beside = DeferredLog(environ, log_format, stream, self.redactor, masked=True)
        beside.dry_run = self.dry_run
        beside.section_prefix, beside._sections = self.section_prefix, self._sections
        beside.title_prefix = self.title_prefix
        beside.results = self.results  # what its steps keep is the run's
        beside._bound = dict(self._bound)  # its JSON records name the image and digest too
        return beside

    def finish(self, error: BaseException | None = None) -> RunSummary:
        """Print the summary (last thing of a run) and return it."""
        summary = self.summarize(error)
        self.summary(summary)
        return summary

    def summarize(self, error: BaseException | None) -> RunSummary:
        ran = {record.name for record in self.steps}

        def status(record: StepRecord) -> str:
            return "planned" if self.dry_run and record.status == "ok" else record.status

        steps = [StepStatus(r.name, status(r), round(r.duration_s, 2)) for r in self.steps]
        steps += [StepStatus(name, "not run", None) for name in self.planned if name not in ran]
        failed_verify = any(r.name == "verify" and r.status == "failed" for r in self.steps)
        return RunSummary(
            steps=tuple(steps),
            image=self.image,
            digest=self.digest,
            verified=None
            if self.dry_run
            else (
                self.verified if self.verified is not None else (False if failed_verify else None)
            ),
            failure=self._failure(error) if error is not None else None,
            dry_run=self.dry_run,
            images=self.images,
        )

    def failure_of(self, error: BaseException) -> Failure:
        """How `error` ended this log's run, as the summary says it."""
        return self._failure(error)

    def _failure(self, error: BaseException) -> Failure:
        failed = [r for r in self.steps if r.status == "failed"]
        # Two steps side by side may both fail: the step is the one whose failure ended the run.
        ended = [r for r in failed if r.error is error] or failed
        step = ended[-1].name if ended else None
        redact = self.redactor.redact
        if isinstance(error, SystemExit | KeyboardInterrupt):  # SIGTERM (a cancelled job), ^C
            code = error.code if isinstance(error, SystemExit) else 130
            return Failure(step, "cancelled", code if isinstance(code, int) else 1)
        if not isinstance(error, ProvenanceError):
            return Failure(step, redact(f"unexpected {type(error).__name__}: {error}"), 1)
        hint = redact(error.hint) if error.hint else None
        if isinstance(error, CommandFailed):
            shown = error.streamed and step is not None  # printed in that step's section
            tail = () if shown else tuple(redact(line) for line in error.stderr_tail)
            return Failure(
                step,
                redact(error.message),
                error.exit_code,
                redact(error.command),
                tail,
                hint,
                stderr_shown=shown,
            )
        return Failure(step, redact(error.message), error.exit_code, hint=hint)


class DeferredLog(RunLog):
    """The log of steps that run beside the preflight (login, a build that pushes nothing). What
    they print is kept, in order, until `go_live()`: then it is printed on the run's log, and
    what follows goes there as it comes. A run that bad input stops never goes live: it shows
    one message, as if those steps had not started."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._kept: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self._live: RunLog | None = None
        self._lock = threading.Lock()  # the steps print from their thread, go_live from ours
        super().__init__(*args, **kwargs)

    def _emit(self, level: str, event: str, **fields: Any) -> None:
        # Its own bound fields (the attempt of its own retries) over the live log's.
        self._pass("_emit", (level, event), {**self._bound, **fields} if self.json else fields)

    def start(self, step: str, title: str, *, collapsed: bool = True) -> None:
        # The live log opens the section when it prints it: a GitLab section's time is then
        # never before the end of the section printed above it (its own time is in its result).
        self._pass("start", (step, title), {"collapsed": collapsed})

    def end(self, step: str, status: str, duration: float, **fields: Any) -> None:
        self._pass("end", (step, status, duration), fields)

    def _print(self, text: str) -> None:
        self._pass("_print", (text,), {})  # markers: the live log prints them as they are

    def _raw(self, text: str) -> None:
        self._pass("_raw", (text,), {})  # text: the live log's own way (an image's prefix)

    def _record(self, record: StepRecord) -> None:
        with self._lock:  # go_live swaps the list: a step starting then must not be lost
            self.steps.append(record)

    def _pass(self, method: str, args: tuple[Any, ...], fields: dict[str, Any]) -> None:
        with self._lock:
            if self._live is None:
                self._kept.append((method, args, fields))
                return
            getattr(self._live, method)(*args, **fields)

    def go_live(self, log: RunLog) -> None:
        """Print what was kept on `log`, then print there as it comes; the records of these
        steps join the run's."""
        with self._lock:
            if self._live is not None:  # live already: once is all it takes
                return
            for method, args, named in self._kept:
                getattr(log, method)(*args, **named)
            self._kept = []
            log.steps += self.steps
            self.steps = log.steps  # one list from now on: a step still running lands there
            self._live = log
