"""What a run did, in the shape the log prints last: steps, image, digest, verdict, failure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenance_tasks.adapters.process import CommandFailed
from provenance_tasks.errors import ProvenanceError
from provenance_tasks.logs import Failure, RunSummary, StepStatus

if TYPE_CHECKING:
    from provenance_tasks.steps.session import Session


def summarize(session: Session, error: BaseException | None) -> RunSummary:
    ran = {record.name for record in session.steps}
    steps = [StepStatus(r.name, r.status, round(r.duration_s, 2)) for r in session.steps]
    steps += [StepStatus(name, "not run", None) for name in session.planned if name not in ran]
    verify = session.results.get("verify")
    return RunSummary(
        steps=tuple(steps),
        image=session.image,
        digest=session.digest,
        verified=getattr(verify, "ok", None) if verify is not None else _verify_failed(session),
        failure=_failure(session, error) if error is not None else None,
    )


def _verify_failed(session: Session) -> bool | None:
    failed = any(r.name == "verify" and r.status == "failed" for r in session.steps)
    return False if failed else None


def _failure(session: Session, error: BaseException) -> Failure:
    failed = [r for r in session.steps if r.status == "failed"]
    step = failed[-1].name if failed else None
    redact = session.redactor.redact
    if not isinstance(error, ProvenanceError):
        return Failure(step, redact(f"unexpected {type(error).__name__}: {error}"), 1)
    hint = redact(error.hint) if error.hint else None
    if isinstance(error, CommandFailed):
        tail = tuple(redact(line) for line in error.stderr_tail)
        return Failure(
            step, redact(error.message), error.exit_code, redact(error.command), tail, hint
        )
    return Failure(step, redact(error.message), error.exit_code, hint=hint)
