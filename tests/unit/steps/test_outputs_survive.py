"""Outputs survive a failed consumer: a sign, verify, attest or publish that fails, for any
reason, only adds its failure to the report here (never replacing the build's part), a file it
can't add to is left alone, and every output is written whole or not at all."""

from __future__ import annotations

import copy
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
import structlog

from provenance_tasks.errors import InputError, VerificationError
from provenance_tasks.redaction import Redactor
from provenance_tasks.settings import resolve
from provenance_tasks.steps import outputs
from provenance_tasks.steps.report_merge import REPORT_SCHEMA, UNREADABLE, updated_report
from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog

REF = "r.test/app@sha256:" + "b" * 64


@pytest.fixture(autouse=True)
def _no_git_repository_above(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


def part(
    task: str,
    status: str = "ok",
    run_id: str = "build-run",
    commit: str | None = "c0ffee",
    **results: Any,
) -> dict[str, Any]:
    """One task's part, as `task_report` makes it."""
    failure = None if status == "ok" else {"message": f"{task} failed", "exit_code": 2}
    return {
        "schema": REPORT_SCHEMA,
        "run": {
            "id": run_id,
            "provider": "gitlab",
            "detected": "x",
            "commit": commit,
            "source": "s",
        },
        "provider": "gitlab",
        "status": status,
        "failure": failure,
        "tasks": [{"task": task, "id": f"{task}-own", "status": status, "failure": failure}],
        "steps": [{"task": task, "name": task, "status": status, "duration_s": 0.1}],
        **results,
    }


def built() -> dict[str, Any]:
    return part(
        "build",
        build={"digest": "sha256:" + "b" * 64},
        outputs={"IMAGE_REF": REF, "PROVENANCE_RUN_ID": "build-run"},
    )


BUILDS_PART = ("schema", "run", "provider", "build", "outputs")


def assert_builds_part_intact(after: dict[str, Any], before: dict[str, Any]) -> None:
    assert {k: after[k] for k in BUILDS_PART} == {k: before[k] for k in BUILDS_PART}
    assert after["tasks"][0] == before["tasks"][0] and after["steps"][0] == before["steps"][0]


# --- updated_report: what the report holds once a task ended -------------------------------------


@pytest.mark.parametrize(
    "continues",
    [None, "", "build-run", "another-run"],
    ids=["failed-before-its-plan", "its-own-run", "the-build's-run", "another-run"],
)
def test_a_failed_task_only_adds_its_failure_whichever_run_it_continues(
    continues: str | None,
) -> None:
    build = built()
    kept = copy.deepcopy(build)
    # Another commit's failure too: a verify given bad input knows nothing of the run yet.
    mine = part(
        "verify",
        "failed",
        run_id=continues or "verify-own",
        commit="f00d",
        outputs={"IMAGE_REF": "r.test/app@sha256:" + "0" * 64},
        build={"digest": "sha256:" + "0" * 64},
        verify={"verified": False},
    )
    after = updated_report(build, mine, "verify", continues)
    assert after is not None
    assert_builds_part_intact(after, kept)
    assert after["verify"] == {"verified": False}  # its verdict: a key nobody wrote before
    assert [(t["task"], t["status"]) for t in after["tasks"]] == [
        ("build", "ok"),
        ("verify", "failed"),
    ]
    assert [s["name"] for s in after["steps"]] == ["build", "verify"]
    assert after["status"] == "failed" and after["failure"]["message"] == "verify failed"
    assert build == kept  # the report read is not changed in place


def test_a_good_verify_after_a_failed_one_sets_its_verdict_and_the_run_passes_again() -> None:
    failed = updated_report(built(), part("verify", "failed", verify={"v": 0}), "verify", None)
    good = updated_report(failed, part("verify", verify={"v": 1}), "verify", "build-run")
    assert good is not None
    assert_builds_part_intact(good, built())
    assert good["verify"] == {"v": 1} and good["status"] == "ok" and good["failure"] is None
    assert [(t["task"], t["status"]) for t in good["tasks"]] == [
        ("build", "ok"),
        ("verify", "failed"),
        ("verify", "ok"),
    ]


def test_a_failed_publish_after_a_passed_verify_keeps_the_verdict_and_fails_the_run() -> None:
    verified = updated_report(built(), part("verify", verify={"v": 1}), "verify", "build-run")
    failed = updated_report(verified, part("publish", "failed", verify={"v": 0}), "publish", "")
    assert failed is not None and failed["verify"] == {"v": 1}
    assert failed["status"] == "failed" and failed["failure"]["message"] == "publish failed"


def test_a_task_that_passed_adds_to_the_run_it_continues_and_else_starts_its_own() -> None:
    signed = updated_report(built(), part("sign", sign={"ok": 1}), "sign", "build-run")
    assert signed is not None and [t["task"] for t in signed["tasks"]] == ["build", "sign"]
    assert signed["sign"] == {"ok": 1} and signed["build"] == built()["build"]
    mine = part("verify", run_id="verify-own")
    assert updated_report(built(), mine, "verify", "") == mine  # --digest: a run of its own
    mine = part("verify", run_id="another-run")
    assert updated_report(built(), mine, "verify", "another-run") == mine


def test_a_build_starts_its_runs_report_and_a_first_task_writes_its_own() -> None:
    mine = part("build", "failed", run_id="next")
    assert updated_report(built(), mine, "build", None) == mine
    assert updated_report(built(), mine, "build-sign-verify", None) == mine
    lone = part("verify", "failed", run_id="v")
    assert updated_report(None, lone, "verify", None) == lone  # no report here: its own


@pytest.mark.parametrize(
    "existing",
    [UNREADABLE, {**built(), "schema": REPORT_SCHEMA - 1}, ["not", "a", "report"], {"x": 1}],
    ids=["not-json", "another-layout", "a-list", "no-run"],
)
def test_a_failure_leaves_a_file_it_cant_add_to_and_a_pass_replaces_it(existing: Any) -> None:
    assert updated_report(existing, part("verify", "failed"), "verify", None) is None
    mine = part("verify", run_id="v")
    assert updated_report(existing, mine, "verify", "v") == mine


# --- write_report, write_dotenv: the files ------------------------------------------------------


def a_run(tmp_path: Path, **flags: Any) -> Run:
    return Run.start(resolve(None, flags), environ={"PATH": "/usr/bin:/bin"}, cwd=tmp_path)


def a_log(continues: str | None, step: str) -> RunLog:
    log = RunLog({}, "console", io.StringIO(), Redactor([]))
    log.run_id = continues
    with log.step(step, step):
        pass
    return log


def test_bad_input_before_the_plan_adds_to_the_builds_report_of_another_commit(
    tmp_path: Path,
) -> None:
    path = tmp_path / "provenance-report.json"
    path.write_text(json.dumps(built()))  # commit c0ffee; this run has none (no git)
    before = path.read_bytes()
    run = a_run(tmp_path)
    outputs.write_report(run, a_log(None, "verify"), "verify", InputError("no digest"))
    after = json.loads(path.read_text())
    assert_builds_part_intact(after, json.loads(before))
    assert after["tasks"][-1]["failure"]["message"] == "no digest"
    assert after["tasks"][-1]["id"] == run.id
    outputs.write_report(run, a_log("build-run", "verify"), "verify", VerificationError("no"))
    assert_builds_part_intact(json.loads(path.read_text()), json.loads(before))


def test_a_failure_over_a_file_that_is_no_report_leaves_it_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "provenance-report.json"
    path.write_text("{ half a report")
    log = a_log(None, "sign")
    with structlog.testing.capture_logs() as said:
        outputs.write_report(a_run(tmp_path), log, "sign", InputError("no digest"))
    assert path.read_text() == "{ half a report"
    assert [e["event"] for e in said if e["log_level"] == "warning"] == [
        "provenance-report.json is left as it was: it is no report this version can add this "
        "sign's failure to (the log above has it)"
    ]
    assert list(tmp_path.iterdir()) == [path]  # no temporary file either


def test_no_values_leave_no_file_and_values_replace_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "provenance-verified.env"
    outputs.write_dotenv(path, {})
    assert not path.exists()
    outputs.write_dotenv(path, {"VERIFIED_IMAGE_REF": REF})
    assert path.read_text() == f"VERIFIED_IMAGE_REF={REF}\n"
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as write_text made it
    outputs.write_dotenv(path, {})  # nothing to say: no file, never an empty one
    assert not path.exists()
    outputs.write_verified(a_run(tmp_path), {})
    assert not path.exists() and list(tmp_path.iterdir()) == []


def test_a_write_that_fails_halfway_leaves_the_old_file_and_no_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "provenance.env"
    path.write_text(f"IMAGE_REF={REF}\n")

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space"):
        outputs.write_dotenv(path, {"IMAGE_REF": "r.test/app@sha256:" + "0" * 64})
    assert path.read_text() == f"IMAGE_REF={REF}\n"
    assert list(tmp_path.iterdir()) == [path]
