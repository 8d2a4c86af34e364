"""The run's report: a task adds its part to the report of the run it continues, never to
another run's, and a run stays failed while a task's last try failed."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from provenance_tasks.errors import ToolError
from provenance_tasks.redaction import Redactor
from provenance_tasks.settings import resolve
from provenance_tasks.steps import outputs
from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog


@pytest.fixture(autouse=True)
def _no_git_repository_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


def task(tmp_path: Path, name: str, continues: str | None, error: Exception | None = None) -> dict:
    run = Run.start(resolve(None, {}), environ={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    log = RunLog({}, "console", io.StringIO(), Redactor([]))
    log.run_id = continues
    with log.step(name, name):
        pass
    outputs.write_report(run, log, name, error)
    found: dict = json.loads((tmp_path / "provenance-report.json").read_text())
    return found


def test_a_task_continuing_the_run_adds_to_its_report_and_another_run_starts_its_own(
    tmp_path: Path,
) -> None:
    first = task(tmp_path, "build", None)
    run_id = first["run"]["id"]
    both = task(tmp_path, "sign", run_id, ToolError("Rekor down"))
    assert [t["task"] for t in both["tasks"]] == ["build", "sign"] and both["run"]["id"] == run_id
    assert both["status"] == "failed"
    again = task(tmp_path, "verify", run_id)  # the sign's last try failed: the run did too
    assert again["status"] == "failed" and again["failure"]["message"] == "Rekor down"
    assert task(tmp_path, "sign", run_id)["status"] == "ok"  # sign tried again, and passed
    other = task(tmp_path, "verify", "another-run")  # same folder, commit and source, not this run
    assert [t["task"] for t in other["tasks"]] == ["verify"]
    assert other["run"]["id"] == "another-run"


def test_what_verify_verified_is_written_and_a_new_verify_removes_it_first(tmp_path: Path) -> None:
    from provenance_tasks.steps.outputs import forget_verified, write_verified

    run = Run.start(resolve({}), environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    write_verified(run, {"VERIFIED_IMAGE_REF": "r.test/app@sha256:" + "a" * 64})
    path = tmp_path / "provenance-verified.env"
    assert path.read_text() == "VERIFIED_IMAGE_REF=r.test/app@sha256:" + "a" * 64 + "\n"
    forget_verified(run)  # a verify starts: a failing one must leave nothing to pin
    assert not path.exists()
    dry = Run.start(resolve({}, {"dry_run": True}), environ={"HOME": str(tmp_path)}, cwd=tmp_path)
    write_verified(dry, {"VERIFIED_IMAGE_REF": "x"})
    assert not path.exists()
