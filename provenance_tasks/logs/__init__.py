"""Logs of a run: structlog events, one section per step, markers no untrusted text can forge."""

from provenance_tasks.logs.markers import neutralise
from provenance_tasks.logs.setup import configure
from provenance_tasks.logs.steplog import StepLog
from provenance_tasks.logs.summary import Failure, ImageRow, RunSummary, StepStatus

__all__ = ["Failure", "ImageRow", "RunSummary", "StepLog", "StepStatus", "configure", "neutralise"]
