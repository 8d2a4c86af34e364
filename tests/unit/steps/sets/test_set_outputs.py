"""The outputs of a set of images: where an image's earlier reference is found, what the dotenv
holds within GitLab's limits, and the report with a section per image."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
import structlog

from provenance_tasks.errors import ProvenanceError, ToolError
from provenance_tasks.settings import resolve
from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sets import outputs as image_outputs
from provenance_tasks.steps.sets.entries import ImageEntry, Shard
from provenance_tasks.steps.sets.log import ImageLog
from provenance_tasks.steps.sets.outputs import (
    DOTENV_BYTES,
    DOTENV_VARIABLES,
    ImageOutcome,
    dotenv_values,
    earlier_of_image,
    suffixed,
    write,
)

DIGEST = "sha256:" + "d" * 64


@pytest.fixture(autouse=True)
def _not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for name in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


def make_run(tmp_path: Path, environ: dict[str, str] | None = None, **flags: Any) -> Run:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", **(environ or {})}
    return Run.start(resolve(None, flags), environ=env, cwd=tmp_path)


def parent_log(run: Run) -> RunLog:
    return RunLog({}, "console", io.StringIO(), run.redactor)


def outcome(
    run: Run,
    parent: RunLog,
    name: str,
    ref: str | None = None,
    *,
    started: bool = True,
    run_id: str | None = None,
) -> ImageOutcome:
    log = ImageLog(parent, name, threading.Lock())
    log.outputs = {"IMAGE_REF": ref} if ref else None
    log.run_id = run_id
    return ImageOutcome(
        ImageEntry(name, {}), run.for_image(name, run.settings, None), log, started=started
    )


def warnings_of(call: Any) -> tuple[Any, list[str]]:
    with structlog.testing.capture_logs() as logs:
        result = call()
    return result, [e["event"] for e in logs if e["log_level"] == "warning"]


def report_with(tmp_path: Path, name: str, images: dict[str, Any]) -> None:
    (tmp_path / name).write_text(json.dumps({"images": images}))


def section(ref: str, **values: str) -> dict[str, Any]:
    return {"outputs": {"IMAGE_REF": ref, **values}}


# --- suffixed -----------------------------------------------------------------------------------


def test_a_shard_writes_its_own_files_beside_the_sets() -> None:
    shard = Shard(2, 3, "--shard")
    assert suffixed("provenance.env", shard) == "provenance-2.env"
    assert suffixed("out/provenance-report.json", shard) == "out/provenance-report-2.json"


def test_without_a_shard_or_a_name_the_name_stays() -> None:
    assert suffixed("provenance.env", None) == "provenance.env"
    assert suffixed(None, Shard(1, 2, "--shard")) is None
    assert suffixed("", Shard(1, 2, "--shard")) == ""


# --- earlier_of_image ---------------------------------------------------------------------------


def test_the_sets_report_comes_first_with_every_value(tmp_path: Path) -> None:
    report_with(
        tmp_path,
        "provenance-report.json",
        {
            "svc-a": section(
                f"r.test/svc-a@{DIGEST}",
                PROVENANCE_COMMIT="c0ffee",
                PROVENANCE_RUN_ID="run-1",
                SIGNER_JOB="42",
            )
        },
    )
    (tmp_path / "provenance.env").write_text("SVC_A_IMAGE_REF=r.test/svc-a@sha256:other\n")
    run = make_run(tmp_path, {"SVC_A_IMAGE_REF": "r.test/svc-a@sha256:environment"})
    found = earlier_of_image(run, "svc-a")
    assert found is not None
    assert found.ref == f"r.test/svc-a@{DIGEST}" and found.complete
    assert found.commit == "c0ffee" and found.run_id == "run-1"
    assert found.values["SIGNER_JOB"] == "42"  # the signing job's own values: the report has them
    assert found.where == "provenance-report.json (image svc-a)"


def test_a_sibling_shards_report_holds_the_images_of_its_share(tmp_path: Path) -> None:
    report_with(tmp_path, "provenance-report.json", {"svc-a": section("r.test/svc-a@sha256:a")})
    report_with(tmp_path, "provenance-report-2.json", {"svc-b": section("r.test/svc-b@sha256:b")})
    report_with(tmp_path, "provenance-report-x.json", {"svc-c": section("r.test/svc-c@sha256:c")})
    run = make_run(tmp_path)
    found = earlier_of_image(run, "svc-b")
    assert found is not None and found.ref == "r.test/svc-b@sha256:b"
    assert found.where == "provenance-report-2.json (image svc-b)" and found.complete
    assert earlier_of_image(run, "svc-c", here_only=True) is None  # -x is no shard's


def test_without_the_image_in_a_report_the_dotenv_gives_its_ref_incomplete(
    tmp_path: Path,
) -> None:
    report_with(tmp_path, "provenance-report.json", {"svc-a": section("r.test/svc-a@sha256:a")})
    (tmp_path / "provenance.env").write_text(
        "PROVENANCE_RUN_ID=run-7\nPROVENANCE_COMMIT=c0ffee\nPROVENANCE_SOURCE=https://src\n"
        "SVC_A_IMAGE_REF=r.test/svc-a@sha256:a\nSVC_B_IMAGE_REF=r.test/svc-b@sha256:b\n"
    )
    found = earlier_of_image(make_run(tmp_path), "svc-b")
    assert found is not None and found.ref == "r.test/svc-b@sha256:b"
    assert not found.complete
    assert found.where == "SVC_B_IMAGE_REF in provenance.env"
    assert (found.commit, found.source, found.run_id) == ("c0ffee", "https://src", "run-7")
    # its record: the ref as IMAGE_REF, and the run's, never another image's
    assert dict(found.values) == {
        "IMAGE_REF": "r.test/svc-b@sha256:b",
        "PROVENANCE_RUN_ID": "run-7",
        "PROVENANCE_COMMIT": "c0ffee",
        "PROVENANCE_SOURCE": "https://src",
    }


def test_a_sibling_shards_dotenv_is_read_too(tmp_path: Path) -> None:
    (tmp_path / "provenance.env").write_text("SVC_A_IMAGE_REF=r.test/svc-a@sha256:a\n")
    (tmp_path / "provenance-3.env").write_text("SVC_B_IMAGE_REF=r.test/svc-b@sha256:b\n")
    found = earlier_of_image(make_run(tmp_path), "svc-b", here_only=True)
    assert found is not None and found.ref == "r.test/svc-b@sha256:b"
    assert found.where == "SVC_B_IMAGE_REF in provenance-3.env"


def test_the_dotenv_comes_before_the_environment(tmp_path: Path) -> None:
    (tmp_path / "provenance.env").write_text("SVC_A_IMAGE_REF=r.test/svc-a@sha256:here\n")
    run = make_run(tmp_path, {"SVC_A_IMAGE_REF": "r.test/svc-a@sha256:environment"})
    found = earlier_of_image(run, "svc-a")
    assert found is not None and found.ref == "r.test/svc-a@sha256:here"


def test_the_environment_comes_last_and_incomplete(tmp_path: Path) -> None:
    run = make_run(
        tmp_path, {"SVC_A_IMAGE_REF": "r.test/svc-a@sha256:e", "PROVENANCE_COMMIT": "c0ffee"}
    )
    found = earlier_of_image(run, "svc-a")
    assert found is not None and found.ref == "r.test/svc-a@sha256:e"
    assert not found.complete and found.commit == "c0ffee"
    assert found.where == "SVC_A_IMAGE_REF in the environment"


def test_here_only_never_reads_the_environment(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"SVC_A_IMAGE_REF": "r.test/svc-a@sha256:e"})
    assert earlier_of_image(run, "svc-a", here_only=True) is None


def test_no_output_anywhere_is_none(tmp_path: Path) -> None:
    (tmp_path / "provenance-report.json").write_text("not json")
    (tmp_path / "provenance.env").write_text("SVC_A_IMAGE_REF=\n")
    assert earlier_of_image(make_run(tmp_path), "svc-a") is None


# --- dotenv_values ------------------------------------------------------------------------------


def test_the_dotenv_holds_the_runs_record_the_report_and_each_images_ref(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    outcomes = [
        outcome(run, parent, "svc-a", "r.test/svc-a@sha256:a"),
        outcome(run, parent, "svc-b"),  # failed before it had a ref
        outcome(run, parent, "svc-c", "r.test/svc-c@sha256:c"),
    ]
    values, warned = warnings_of(lambda: dotenv_values(run, parent, outcomes))
    assert values == {
        "PROVENANCE_RUN_ID": run.id,
        "PROVENANCE_COMMIT": "",
        "PROVENANCE_SOURCE": "",
        "PROVENANCE_REPORT": "provenance-report.json",
        "SVC_A_IMAGE_REF": "r.test/svc-a@sha256:a",
        "SVC_C_IMAGE_REF": "r.test/svc-c@sha256:c",
    }
    assert warned == []


def test_refs_past_gitlabs_variable_limit_are_left_to_the_report_and_named(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    outcomes = [outcome(run, parent, f"svc-{n:02d}", f"r.test/s{n}@sha256:{n}") for n in range(48)]
    values, warned = warnings_of(lambda: dotenv_values(run, parent, outcomes))
    assert len(values) == DOTENV_VARIABLES  # 4 of the run, 46 images
    assert "SVC_45_IMAGE_REF" in values and "SVC_46_IMAGE_REF" not in values
    (warning,) = warned
    assert "SVC_46_IMAGE_REF, SVC_47_IMAGE_REF are only in the report" in warning
    assert "(provenance-report.json)" in warning and "50 variables" in warning


def test_refs_past_gitlabs_size_limit_are_left_to_the_report_and_later_small_ones_fit(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    long = "r.test/" + "x" * 1500 + "@sha256:"
    outcomes = [outcome(run, parent, f"big-{n}", f"{long}{n}") for n in range(4)]
    outcomes.append(outcome(run, parent, "small", "r.test/small@sha256:s"))
    values, warned = warnings_of(lambda: dotenv_values(run, parent, outcomes))
    text = "".join(f"{k}={v}\n" for k, v in values.items())
    assert len(text.encode()) <= DOTENV_BYTES
    assert [k for k in values if k.startswith("BIG_")] == [
        "BIG_0_IMAGE_REF",
        "BIG_1_IMAGE_REF",
        "BIG_2_IMAGE_REF",
    ]
    assert values["SMALL_IMAGE_REF"] == "r.test/small@sha256:s"
    (warning,) = warned
    assert "BIG_3_IMAGE_REF are only in the report" in warning and "5 KB" in warning


def test_more_than_twenty_variables_warns_of_older_gitlab_instances(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    many = [outcome(run, parent, f"svc-{n}", f"r.test/s{n}@sha256:{n}") for n in range(17)]
    values, warned = warnings_of(lambda: dotenv_values(run, parent, many))
    assert len(values) == 21
    (warning,) = warned
    assert "holds 21 variables" in warning and "older than 15.x take 20" in warning
    _, none = warnings_of(lambda: dotenv_values(run, parent, many[:16]))  # 20: no warning
    assert none == []


def test_the_run_id_is_the_one_run_every_started_image_continues(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    same = [
        outcome(run, parent, "svc-a", run_id="build-run"),
        outcome(run, parent, "svc-b", run_id="build-run"),
        outcome(run, parent, "svc-c", started=False, run_id="elsewhere"),
    ]
    assert dotenv_values(run, parent, same)["PROVENANCE_RUN_ID"] == "build-run"
    mixed = [
        outcome(run, parent, "svc-a", run_id="one"),
        outcome(run, parent, "svc-b", run_id="two"),
    ]
    assert dotenv_values(run, parent, mixed)["PROVENANCE_RUN_ID"] == run.id


# --- write --------------------------------------------------------------------------------------


def ran(o: ImageOutcome, step: str, error: ProvenanceError | None = None) -> ImageOutcome:
    """`o` as its pipeline left it: one step run (failed with `error`)."""
    with contextlib.suppress(ProvenanceError), o.log.step(step, step.capitalize()):
        if error is not None:
            raise error
    o.error = error
    return o


def read(tmp_path: Path, name: str = "provenance-report.json") -> dict[str, Any]:
    found: dict[str, Any] = json.loads((tmp_path / name).read_text())
    return found


def test_the_report_has_a_section_per_image_and_says_those_not_run(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    outcomes = [
        ran(outcome(run, parent, "svc-a", f"r.test/svc-a@{DIGEST}"), "build"),
        ran(outcome(run, parent, "svc-b"), "build", ToolError("the push failed")),
        outcome(run, parent, "svc-c", started=False),
    ]
    write(run, parent, "build", outcomes, None, None)
    report = read(tmp_path)
    images = report["images"]
    assert list(images) == ["svc-a", "svc-b", "svc-c"]
    assert images["svc-a"]["status"] == "ok" and images["svc-a"]["failure"] is None
    assert [s["name"] for s in images["svc-a"]["steps"]] == ["build"]
    assert images["svc-a"]["outputs"] == {"IMAGE_REF": f"r.test/svc-a@{DIGEST}"}
    assert images["svc-b"]["status"] == "failed"
    assert images["svc-b"]["failure"]["message"] == "the push failed"
    assert images["svc-c"] == {"status": "not run", "failure": None}
    assert report["status"] == "failed" and report["failure"] == {"images": ["svc-b", "svc-c"]}
    assert report["run"]["id"] == run.id and report["shard"] is None
    assert [t["task"] for t in report["tasks"]] == ["build"]


def test_the_dotenv_and_the_reports_outputs_are_the_same_values(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    outcomes = [ran(outcome(run, parent, "svc-a", f"r.test/svc-a@{DIGEST}"), "build")]
    write(run, parent, "build", outcomes, Shard(1, 2, "--shard"), None)
    lines = (tmp_path / "provenance.env").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines)
    report = read(tmp_path)
    assert values["SVC_A_IMAGE_REF"] == f"r.test/svc-a@{DIGEST}"
    assert report["outputs"] == values == parent.outputs
    assert report["status"] == "ok" and report["failure"] is None
    assert report["shard"] == {"index": 1, "total": 2, "source": "--shard"}


def test_a_run_level_failure_fails_the_report_even_when_every_image_passed(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    outcomes = [ran(outcome(run, parent, "svc-a", f"r.test/svc-a@{DIGEST}"), "build")]
    write(run, parent, "build", outcomes, None, {"message": "cancelled", "exit_code": 143})
    report = read(tmp_path)
    assert report["status"] == "failed"
    assert report["failure"] == {"message": "cancelled", "exit_code": 143}
    assert report["tasks"][0]["failure"] == {"message": "cancelled", "exit_code": 143}


def test_a_later_task_of_the_run_adds_to_each_images_section(tmp_path: Path) -> None:
    build = make_run(tmp_path)
    parent = parent_log(build)
    write(
        build,
        parent,
        "build",
        [
            ran(outcome(build, parent, "svc-a", f"r.test/svc-a@{DIGEST}", run_id=""), "build"),
            ran(outcome(build, parent, "svc-b", f"r.test/svc-b@{DIGEST}", run_id=""), "build"),
        ],
        None,
        None,
    )

    sign = make_run(tmp_path)  # a later job: another run id, continuing the build's run
    assert sign.id != build.id
    parent = parent_log(sign)
    write(
        sign,
        parent,
        "sign",
        [
            ran(outcome(sign, parent, "svc-a", f"r.test/svc-a@{DIGEST}", run_id=build.id), "sign"),
            outcome(sign, parent, "svc-b", started=False, run_id=build.id),
        ],
        None,
        None,
    )
    report = read(tmp_path)
    assert report["run"]["id"] == build.id
    assert [(t["task"], t["id"]) for t in report["tasks"]] == [
        ("build", build.id),
        ("sign", sign.id),
    ]
    a = report["images"]["svc-a"]
    assert [s["name"] for s in a["steps"]] == ["build", "sign"]
    assert [t["task"] for t in a["tasks"]] == ["build", "sign"]
    b = report["images"]["svc-b"]  # not run this time: the build's section stays
    assert b["status"] == "ok" and [s["name"] for s in b["steps"]] == ["build"]
    assert report["status"] == "ok"


def test_a_task_of_another_run_starts_its_own_report(tmp_path: Path) -> None:
    first = make_run(tmp_path)
    parent = parent_log(first)
    write(
        first,
        parent,
        "build",
        [
            ran(outcome(first, parent, "svc-a", f"r.test/svc-a@{DIGEST}", run_id=""), "build"),
            ran(outcome(first, parent, "svc-b", f"r.test/svc-b@{DIGEST}", run_id=""), "build"),
        ],
        None,
        None,
    )
    other = make_run(tmp_path)
    parent = parent_log(other)
    write(
        other,
        parent,
        "verify",
        [
            ran(
                outcome(other, parent, "svc-a", f"r.test/svc-a@{DIGEST}", run_id="another"),
                "verify",
            )
        ],
        None,
        None,
    )
    report = read(tmp_path)
    assert report["run"]["id"] == "another"
    assert list(report["images"]) == ["svc-a"]
    assert [s["name"] for s in report["images"]["svc-a"]["steps"]] == ["verify"]
    assert [t["task"] for t in report["tasks"]] == ["verify"]


def test_the_report_is_redacted(tmp_path: Path) -> None:
    run = make_run(
        tmp_path, {"REGISTRY_PASSWORD": "hunter2-pass"}, password_env="REGISTRY_PASSWORD"
    )
    parent = parent_log(run)
    o = ran(outcome(run, parent, "svc-a", f"r.test/svc-a@{DIGEST}"), "build")
    assert o.log.outputs is not None
    o.log.outputs["IMAGE_URI"] = "https://ci:hunter2-pass@r.test/svc-a"  # no log redacted this
    write(run, parent, "build", [o], None, None)
    text = (tmp_path / "provenance-report.json").read_text()
    assert "hunter2-pass" not in text and "https://ci:" in text


def test_a_dry_run_writes_no_file_but_keeps_the_values(tmp_path: Path) -> None:
    run = make_run(tmp_path, dry_run=True)
    parent = parent_log(run)
    outcomes = [ran(outcome(run, parent, "svc-a", f"r.test/svc-a@{DIGEST}"), "build")]
    write(run, parent, "build", outcomes, None, None)
    assert not (tmp_path / "provenance-report.json").exists()
    assert not (tmp_path / "provenance.env").exists()
    assert parent.outputs is not None
    assert parent.outputs["SVC_A_IMAGE_REF"] == f"r.test/svc-a@{DIGEST}"


def test_invalidate_removes_the_sets_outputs_unless_a_dry_run(tmp_path: Path) -> None:
    for name in ("provenance.env", "provenance-report.json"):
        (tmp_path / name).write_text("old")
    image_outputs.invalidate(make_run(tmp_path, dry_run=True))
    assert (tmp_path / "provenance.env").exists()
    image_outputs.invalidate(make_run(tmp_path))
    assert not (tmp_path / "provenance.env").exists()
    assert not (tmp_path / "provenance-report.json").exists()


# --- a failed task only adds: the build's outputs survive it -------------------------------------


def built_set(tmp_path: Path) -> Run:
    build = make_run(tmp_path)
    parent = parent_log(build)
    write(
        build,
        parent,
        "build",
        [
            ran(outcome(build, parent, "api", f"r.test/api@{DIGEST}", run_id=""), "build"),
            ran(outcome(build, parent, "worker", f"r.test/worker@{DIGEST}", run_id=""), "build"),
        ],
        None,
        None,
    )
    return build


def test_a_verify_failing_before_any_image_started_leaves_the_dotenv_and_adds_to_the_report(
    tmp_path: Path,
) -> None:
    build = built_set(tmp_path)
    dotenv = (tmp_path / "provenance.env").read_bytes()
    before = read(tmp_path)
    verify = make_run(tmp_path)  # a later job, bad input: its plan never said which run
    parent = parent_log(verify)
    not_started = [outcome(verify, parent, n, started=False) for n in ("api", "worker")]
    bad_input = {"message": "--only nope: no such image", "exit_code": 2, "hint": None}
    write(verify, parent, "verify", not_started, None, bad_input)
    assert (tmp_path / "provenance.env").read_bytes() == dotenv
    after = read(tmp_path)
    for key in ("run", "outputs", "images", "shard", "schema"):
        assert after[key] == before[key], key
    assert [(t["task"], t["id"], t["status"]) for t in after["tasks"]] == [
        ("build", build.id, "ok"),
        ("verify", verify.id, "failed"),
    ]
    assert after["status"] == "failed" and after["failure"] == bad_input

    good = make_run(tmp_path)  # the retry: it continues the build's run, and passes
    parent = parent_log(good)
    verified = [ran(outcome(good, parent, n, run_id=build.id), "verify") for n in ("api", "worker")]
    write(good, parent, "verify", verified, None, None)
    assert (tmp_path / "provenance.env").read_bytes() == dotenv  # a verify hands on no ref
    final = read(tmp_path)
    assert final["run"] == before["run"] and final["outputs"] == before["outputs"]
    api = final["images"]["api"]
    assert [s["name"] for s in api["steps"]] == ["build", "verify"]
    assert api["outputs"] == before["images"]["api"]["outputs"]
    assert final["status"] == "ok" and final["failure"] is None


def test_an_images_failed_verify_adds_to_its_section_and_replaces_nothing(tmp_path: Path) -> None:
    build = built_set(tmp_path)
    dotenv = (tmp_path / "provenance.env").read_bytes()
    before = read(tmp_path)
    verify = make_run(tmp_path)
    parent = parent_log(verify)
    failing = ran(
        outcome(verify, parent, "api", f"r.test/api@sha256:{'0' * 64}", run_id=build.id),
        "verify",
        ToolError("policy"),
    )
    write(verify, parent, "verify", [failing], None, None)
    assert (tmp_path / "provenance.env").read_bytes() == dotenv
    after = read(tmp_path)
    api, kept = after["images"]["api"], before["images"]["api"]
    assert api["outputs"] == kept["outputs"] and api["run"] == kept["run"]
    assert [(t["task"], t["status"]) for t in api["tasks"]] == [
        ("build", "ok"),
        ("verify", "failed"),
    ]
    assert after["images"]["worker"] == before["images"]["worker"]
    assert after["outputs"] == before["outputs"] and after["status"] == "failed"


def test_a_failure_over_a_file_that_is_no_sets_report_leaves_it(tmp_path: Path) -> None:
    (tmp_path / "provenance-report.json").write_text('{"schema": 3, "run": {"id": "x"}}')
    run = make_run(tmp_path)
    parent = parent_log(run)
    _, said = warnings_of(
        lambda: write(run, parent, "sign", [], None, {"message": "bad", "exit_code": 2})
    )
    assert (tmp_path / "provenance-report.json").read_text() == '{"schema": 3, "run": {"id": "x"}}'
    assert said and "is left as it was" in said[-1]
    assert not (tmp_path / "provenance.env").exists()


def test_a_section_without_the_images_build_leaves_its_ref_to_the_environment(
    tmp_path: Path,
) -> None:
    # A failed verify in a folder with no files: the report it started knows the image only as
    # not run. The retry takes API_IMAGE_REF from GitLab's variables, as the first try did.
    first = make_run(tmp_path, {"API_IMAGE_REF": f"r.test/api@{DIGEST}"})
    parent = parent_log(first)
    write(first, parent, "verify", [outcome(first, parent, "api", started=False)], None, {})
    assert read(tmp_path)["images"]["api"] == {"status": "not run", "failure": None}
    found = earlier_of_image(first, "api")
    assert found is not None and found.ref == f"r.test/api@{DIGEST}"
    assert found.where == "API_IMAGE_REF in the environment"


def test_a_failed_build_of_the_image_decides_even_over_the_environment(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"API_IMAGE_REF": f"r.test/api@{DIGEST}"})
    parent = parent_log(run)
    failed = ran(outcome(run, parent, "api"), "build", ToolError("the push failed"))
    write(run, parent, "build", [failed], None, None)
    assert earlier_of_image(run, "api") is None  # the build here failed: no other digest


def test_a_verify_that_verified_none_leaves_no_verified_dotenv(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    parent = parent_log(run)
    failing = ran(outcome(run, parent, "api"), "verify", ToolError("policy"))
    write(run, parent, "verify", [failing], None, None)
    assert not (tmp_path / "provenance-verified.env").exists()
