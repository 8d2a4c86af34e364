"""A run of many images: which images this job works on (the set, --only, --image-name, the
shard), and the exit code a run ends with when its images failed in different ways."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.errors import (
    CommandFailed,
    InputError,
    ProvenanceError,
    ToolError,
    VerificationError,
)
from provenance_tasks.logs import Failure, ImageRow, RunSummary
from provenance_tasks.settings import resolve
from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sets import run as images
from provenance_tasks.steps.sets.entries import ImageEntry, Shard
from provenance_tasks.steps.sets.log import ImageLog
from provenance_tasks.steps.sets.outputs import ImageOutcome
from provenance_tasks.steps.sets.run import ImagesFailed, chosen
from tests.unit.gitlab_env import GITLAB_ENV

SET = [{"name": n} for n in ("web", "api", "worker", "docs")]


@pytest.fixture(autouse=True)
def _not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for name in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


def make_run(
    tmp_path: Path,
    config: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    **flags: Any,
) -> Run:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", **(environ or {})}
    return Run.start(resolve(config, flags), environ=env, cwd=tmp_path)


def names(found: tuple[ImageEntry, ...]) -> list[str]:
    return [e.name for e in found]


# --- chosen -------------------------------------------------------------------------------------


def test_the_whole_set_without_a_shard(tmp_path: Path) -> None:
    found, shard = chosen(make_run(tmp_path, {"images": SET}))
    assert names(found) == ["web", "api", "worker", "docs"] and shard is None


def test_only_narrows_the_set(tmp_path: Path) -> None:
    found, _ = chosen(make_run(tmp_path, {"images": SET}, only=["docs", "api"]))
    assert names(found) == ["api", "docs"]


def test_only_without_a_set_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--only names images, but provenance\.images lists none"):
        chosen(make_run(tmp_path, only=["web"]))


def test_an_image_name_alone_is_a_set_of_that_one_image(tmp_path: Path) -> None:
    found, shard = chosen(make_run(tmp_path, image_name="svc-a"))
    assert found == (ImageEntry("svc-a", {}),) and shard is None


def test_an_image_name_alone_is_checked_as_a_name(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^--image-name: image 1 has the name 'Svc A'"):
        chosen(make_run(tmp_path, image_name="Svc A"))


def test_an_image_name_picks_one_image_of_the_set(tmp_path: Path) -> None:
    run = make_run(
        tmp_path, {"images": [{"name": "web", "context": "w"}, {"name": "api"}]}, image_name="web"
    )
    found, _ = chosen(run)
    assert found == (ImageEntry("web", {"context": "w"}),)  # with its own settings


def test_an_image_name_the_set_lacks_is_refused_as_the_flag(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^--image-name nope: no such image"):
        chosen(make_run(tmp_path, {"images": SET}, image_name="nope"))


def test_the_set_from_an_images_file(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text("- name: web\n- name: api\n")
    found, _ = chosen(make_run(tmp_path, {"images_file": "images.yaml"}))
    assert names(found) == ["web", "api"]


def test_in_gitlab_a_parallel_job_takes_its_share(tmp_path: Path) -> None:
    environ = {**GITLAB_ENV, "CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}
    found, shard = chosen(make_run(tmp_path, {"images": SET}, environ))
    assert shard == Shard(2, 2, "CI_NODE_INDEX/CI_NODE_TOTAL")
    assert names(found) == ["worker", "docs"]  # sorted api, docs, web, worker: 2nd and 4th


def test_outside_gitlab_its_parallel_variables_make_no_shard(tmp_path: Path) -> None:
    environ = {"CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "2"}
    found, shard = chosen(make_run(tmp_path, {"images": SET}, environ))
    assert shard is None and len(found) == 4


def test_in_gitlab_a_job_without_parallel_takes_every_image(tmp_path: Path) -> None:
    found, shard = chosen(make_run(tmp_path, {"images": SET}, {**GITLAB_ENV, "CI_NODE_TOTAL": "1"}))
    assert shard is None and len(found) == 4


def test_the_shard_flag_works_anywhere_and_after_only(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"images": SET}, only=["web", "api", "docs"], shard="1/2")
    found, shard = chosen(run)
    assert shard == Shard(1, 2, "--shard")
    assert names(found) == ["web", "api"]  # sorted api, docs, web: 1st and 3rd


def test_a_set_is_any_way_of_naming_one(tmp_path: Path) -> None:
    assert not make_run(tmp_path).settings.of_a_set
    assert make_run(tmp_path, {"images": SET}).settings.of_a_set
    assert make_run(tmp_path, {"images_file": "images.yaml"}).settings.of_a_set
    assert make_run(tmp_path, image_name="web").settings.of_a_set


# --- how a run of many fails --------------------------------------------------------------------


def outcomes_of(
    tmp_path: Path, *errors: BaseException | None, skipped: int = 0
) -> list[ImageOutcome]:
    run = make_run(tmp_path)
    parent = RunLog({}, "console", io.StringIO(), run.redactor)
    lock = threading.Lock()
    found = []
    for n, error in enumerate([*errors, *([None] * skipped)]):
        name = f"svc-{n}"
        found.append(
            ImageOutcome(
                ImageEntry(name, {}),
                run.for_image(name, run.settings, None),
                ImageLog(parent, name, lock),
                error,
                started=n < len(errors),
            )
        )
    return found


def raised(outcomes: list[ImageOutcome]) -> ImagesFailed:
    with pytest.raises(ImagesFailed) as caught:
        images._raise_if_failed(outcomes)
    return caught.value


def test_no_failure_raises_nothing(tmp_path: Path) -> None:
    images._raise_if_failed(outcomes_of(tmp_path, None, None))


@pytest.mark.parametrize(
    ("errors", "code"),
    [
        ((ToolError("x"), InputError("y"), VerificationError("z")), 3),
        ((VerificationError("z"), ToolError("x")), 3),
        ((ToolError("x"), InputError("y")), 2),
        ((CommandFailed("cosign", ["cosign"], 1, "boom"), RuntimeError("bug")), 4),
        ((RuntimeError("bug"),), 1),
        ((InputError("y"), None, RuntimeError("bug")), 2),
    ],
)
def test_a_policy_failure_beats_bad_input_which_beats_a_tool_failure(
    tmp_path: Path, errors: tuple[BaseException | None, ...], code: int
) -> None:
    assert raised(outcomes_of(tmp_path, *errors)).exit_code == code


def test_a_cancel_alone_keeps_its_own_code(tmp_path: Path) -> None:
    assert raised(outcomes_of(tmp_path, KeyboardInterrupt())).exit_code == 130


def test_the_failure_names_every_failed_image_and_those_never_started(tmp_path: Path) -> None:
    failed = raised(outcomes_of(tmp_path, None, ToolError("x"), InputError("y"), skipped=2))
    assert failed.message == (
        "2 of 5 images failed: svc-1, svc-2; not started (--fail-fast): svc-3, svc-4"
    )
    assert failed.hint == "each image's reason is in the summary above"
    assert isinstance(failed, ProvenanceError)


def test_images_failed_carries_its_own_exit_code() -> None:
    failed = ImagesFailed("2 of 3 images failed", 3, hint="see above")
    assert failed.exit_code == 3 and ImagesFailed.exit_code == 1  # the instance's, not the class's
    assert failed.diagnostics() == "2 of 3 images failed\n  fix: see above"


# --- each image's settings ----------------------------------------------------------------------


def test_each_image_is_pushed_under_the_runs_repository_unless_it_names_its_own(
    tmp_path: Path,
) -> None:
    run = make_run(tmp_path, {"image": "r.test/team", "tags": ["v1"]})
    parent = RunLog({}, "console", io.StringIO(), run.redactor)
    lock = threading.Lock()
    web = images._outcome(run, ImageEntry("web", {"tags": "v2,edge"}), parent, lock)
    api = images._outcome(run, ImageEntry("api", {"image": "r.test/elsewhere"}), parent, lock)
    assert web.run.settings.image == "r.test/team/web" and web.run.settings.tags == ("v2", "edge")
    assert api.run.settings.image == "r.test/elsewhere" and api.run.settings.tags == ("v1",)
    assert web.run.image_name == "web" and web.log.name == "web" and not web.started


def test_a_context_and_file_given_for_the_one_image_named_win_over_its_own(
    tmp_path: Path,
) -> None:
    run = make_run(
        tmp_path, {"images": SET}, context="services/next", file="next.Dockerfile", only=["web"]
    )
    parent = RunLog({}, "console", io.StringIO(), run.redactor)
    own = {"context": "services/web", "file": "web.Dockerfile", "target": "release"}
    web = images._outcome(run, ImageEntry("web", own), parent, threading.Lock())
    assert (web.run.settings.context, web.run.settings.file) == ("services/next", "next.Dockerfile")
    assert web.run.settings.target == "release"  # not given by the caller: the image's own
    configured = make_run(tmp_path, {"images": SET, "context": "services"})
    web = images._outcome(configured, ImageEntry("web", own), parent, threading.Lock())
    assert web.run.settings.context == "services/web"  # invoke.yaml's is the set's default


def test_the_log_says_in_one_line_that_the_runs_image_is_the_sets_base() -> None:
    entries = (ImageEntry("api", {}), ImageEntry("web", {"image": "r.test/web"}))
    assert images._base("localhost:5000/x", entries[:1]) == (
        "provenance.image localhost:5000/x is the set's base: images land at "
        "localhost:5000/x/<name>"
    )
    assert images._base("r.test/x", entries).endswith("<name> (but web: its own image)")


def test_an_images_bad_setting_is_said_with_its_name(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    parent = RunLog({}, "console", io.StringIO(), run.redactor)
    with pytest.raises(InputError, match=r"^image web: provenance\.build_args must be a list"):
        images._outcome(run, ImageEntry("web", {"build_args": {"A": 1}}), parent, threading.Lock())


def test_an_image_remembers_what_this_folder_said_of_it_before(tmp_path: Path) -> None:
    (tmp_path / "provenance.env").write_text("WEB_IMAGE_REF=r.test/team/web@sha256:old\n")
    run = make_run(tmp_path, environ={"API_IMAGE_REF": "r.test/team/api@sha256:env"})
    parent = RunLog({}, "console", io.StringIO(), run.redactor)
    lock = threading.Lock()
    web = images._outcome(run, ImageEntry("web", {}), parent, lock)
    api = images._outcome(run, ImageEntry("api", {}), parent, lock)
    assert web.run.before is not None and web.run.before.ref == "r.test/team/web@sha256:old"
    assert api.run.before is None  # the environment is another job's: not this folder's


# --- the summary's rows -------------------------------------------------------------------------


def test_each_image_is_a_row_of_the_summary_as_its_log_ended(tmp_path: Path) -> None:
    ok, failed, skipped = outcomes_of(tmp_path, None, ToolError("push refused"), skipped=1)
    ok.log.bind_image("r.test/svc-0", "sha256:aa")
    with ok.log.step("build", "Build"):
        pass
    with pytest.raises(ToolError), failed.log.step("push", "Push"):
        raise ToolError("push refused", hint="check the registry")
    rows = [images._row(o) for o in (ok, failed, skipped)]
    assert rows[0] == ImageRow("svc-0", "ok", "r.test/svc-0", "sha256:aa", None, None)
    assert rows[1].status == "failed" and rows[1].failure is not None
    assert (rows[1].failure.step, rows[1].failure.message, rows[1].failure.exit_code) == (
        "push",
        "push refused",
        4,
    )
    assert rows[2] == ImageRow("svc-2", "not run")


ROWS = (
    ImageRow("web", "ok", "r.test/web", "sha256:aa", True),
    ImageRow(
        "api-server",
        "failed",
        "r.test/api-server",
        None,
        False,
        Failure("sign", "cosign failed", 4, hint="check the key", stderr_shown=True),
    ),
    ImageRow("docs", "not run"),
)


def test_the_summary_has_a_table_of_the_images_then_why_each_failed() -> None:
    assert RunSummary(steps=(), images=ROWS).lines() == [
        "image       status    verified  reference",
        "web         ok        yes       r.test/web@sha256:aa",
        "api-server  failed    NO        r.test/api-server",
        "docs        not run   -         -",
        "api-server: FAILED in step sign (exit 4): cosign failed",
        "  fix: check the key",
        "  its stderr: above, in api-server's sign section",
    ]


def test_a_short_name_still_leaves_room_for_the_header() -> None:
    lines = RunSummary(steps=(), images=(ImageRow("a", "ok"),)).lines()
    assert lines == ["image  status    verified  reference", "a      ok        -         -"]


def test_the_summary_event_has_a_record_per_image() -> None:
    record = RunSummary(steps=(), images=ROWS).as_event()
    assert [r["name"] for r in record["images"]] == ["web", "api-server", "docs"]
    web = {"name": "web", "status": "ok", "image": "r.test/web", "digest": "sha256:aa"}
    assert record["images"][0] == {**web, "verified": True, "failure": None}
    failure = record["images"][1]["failure"]
    assert failure["step"] == "sign" and failure["hint"] == "check the key"
    assert failure["exit_code"] == 4 and failure["stderr_shown"] is True
    assert "images" not in RunSummary(steps=()).as_event()  # one image: no table


def test_a_shard_left_with_no_image_is_refused_not_a_silent_success(tmp_path: Path) -> None:
    run = make_run(tmp_path, {"images": SET[:2]}, shard="3/3")
    with pytest.raises(InputError, match=r"shard 3/3 \(--shard\) of 2 images has none"):
        chosen(run)


def test_a_job_that_names_its_image_is_no_shard_under_a_parallel_matrix(tmp_path: Path) -> None:
    matrix = {**GITLAB_ENV, "CI_NODE_INDEX": "2", "CI_NODE_TOTAL": "4"}  # parallel: matrix
    found, shard = chosen(make_run(tmp_path, {"images": SET}, matrix, only=["api"]))
    assert shard is None and names(found) == ["api"]
    found, shard = chosen(make_run(tmp_path, {"images": SET}, matrix, image_name="docs"))
    assert shard is None and names(found) == ["docs"]


def test_a_sets_plan_reads_each_images_own_ref_not_the_folders(tmp_path: Path) -> None:
    """The set plans every image before any starts, with the run's tools: each image's digest
    is its own <NAME>_IMAGE_REF (in the dotenv here), never the folder's IMAGE_REF."""
    from provenance_tasks.steps.run import Tools

    digest = "sha256:" + "a" * 64
    (tmp_path / "provenance.env").write_text(
        f"API_IMAGE_REF=localhost:5000/x/api@{digest}\n"
        f"PROVENANCE_COMMIT={GITLAB_ENV['CI_COMMIT_SHA']}\n"
        f"PROVENANCE_SOURCE={GITLAB_ENV['CI_PROJECT_URL']}\n"
    )
    run = make_run(
        tmp_path,
        {"images": [{"name": "api"}], "image": "localhost:5000/x"},
        {k: v for k, v in GITLAB_ENV.items() if not k.startswith(("CI_REGISTRY", "CI_JOB_TOKEN"))},
        public_key="cosign.pub",
    )
    (tmp_path / "cosign.pub").write_text("pem")
    log = RunLog(run.environ, "text", io.StringIO(), run.redactor)
    _, _, outcomes = images._set_up("verify", run, log, threading.Lock())
    plans = images._prepare("verify", run, outcomes, Tools(run), log)
    assert plans["api"].image is not None
    assert str(plans["api"].image) == f"localhost:5000/x/api@{digest}"
