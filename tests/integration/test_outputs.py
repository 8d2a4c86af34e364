"""Outputs are tied to the run that wrote them: a stale dotenv never gets an old digest signed.

The story: a good build writes provenance.env; the next commit's build fails. Before, the old
provenance.env stayed, and `sign` signed the old digest with the new commit's annotations.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, make_context

pytestmark = pytest.mark.integration


def test_a_failed_build_leaves_no_earlier_digest_to_sign(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    good = make_context(tmp_path / "good")
    done = runner.run("build", "--context", str(good), env=env)
    assert done.returncode == 0, done.stderr
    dotenv = runner.cwd / "provenance.env"
    written = dotenv.read_text()
    assert f"PROVENANCE_COMMIT={env['CI_COMMIT_SHA']}\n" in written
    assert "PROVENANCE_RUN_ID=" in written
    assert f"IMAGE_PUBLISHED={env['CI_COMMIT_SHORT_SHA']}\n" in written
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert report["schema"] == 3 and report["run"]["commit"] == env["CI_COMMIT_SHA"]
    kept = tmp_path / "kept.env"
    shutil.copy(dotenv, kept)

    # The next commit: its build fails (no Dockerfile), and takes the old outputs with it.
    sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()  # noqa: S324 - a fake commit id
    env.update({"CI_COMMIT_SHA": sha, "CI_COMMIT_SHORT_SHA": sha[:8]})
    broken = tmp_path / "broken"
    broken.mkdir()
    done = runner.run("build", "--context", str(broken), env=env)
    assert done.returncode == 2, done.stderr
    assert not dotenv.exists()
    # The failed build still reports (GitLab's `artifacts: when: always`), with no digest.
    failed = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert (failed["status"], failed["run"]["commit"]) == ("failed", sha)
    assert failed["failure"]["exit_code"] == 2 and "no Dockerfile" in failed["failure"]["message"]
    assert "outputs" not in failed and "build" not in failed
    done = runner.run("sign", "--key", str(key), env=env)
    assert done.returncode == 2 and "no digest to work on" in done.stderr, done.stderr
    # The same run's report: the failed sign is added to the failed build's.
    failed = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert [(t["task"], t["status"]) for t in failed["tasks"]] == [
        ("build", "failed"),
        ("sign", "failed"),
    ]

    # An old dotenv put back by hand (or by a cache) is refused: it names another commit.
    shutil.copy(kept, dotenv)
    done = runner.run("sign", "--key", str(key), env=env)
    assert done.returncode == 2, done.stderr
    assert "was written for commit" in done.stderr and "--digest" in done.stderr
    assert not any(t.startswith("sha256-") for t in registry.tags(env["CI_REGISTRY_IMAGE"]))


def signed_in_a_build_job(
    runner: Runner, context: Path, key: Path, password: str, cosign: str
) -> dict[str, str]:
    """build-sign-verify in a GitLab build job; returns the job's environment."""
    build_job = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--key", str(key), env=build_job
    )
    assert done.returncode == 0, done.stderr
    return build_job


def job_elsewhere(runner: Runner, folder: Path) -> Runner:
    """Another job, or a script, in a folder of its own: none of the build job's files."""
    folder.mkdir()
    return Runner(runner.testbed, folder, runner.sigstore)


def dotenv_variables(path: Path) -> dict[str, str]:
    """What GitLab hands the later jobs of a pipeline from a `reports: dotenv` artifact."""
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_a_later_job_verifies_the_build_jobs_image_from_its_dotenv(
    runner: Runner,
    registry: Registry,
    context: Path,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    build_job = signed_in_a_build_job(runner, context, key, password, cosign)
    handed = dotenv_variables(runner.cwd / "provenance.env")
    assert handed["PROVENANCE_JOB_ID"] == build_job["CI_JOB_ID"]

    # The deploy job: same pipeline, its own job id and URL, the dotenv as variables, no files.
    job_url = build_job["CI_JOB_URL"].replace("98765", "98766")
    deploy_job = {**build_job, "CI_JOB_ID": "98766", "CI_JOB_URL": job_url, **handed}
    later = job_elsewhere(runner, tmp_path / "deploy")
    done = later.run("verify", "--public-key", str(pub), env=deploy_job)
    assert done.returncode == 0, done.stderr
    assert "VERIFIED" in done.stderr and "MISMATCH" not in done.stderr
    assert f"signed by: com.gitlab.ci.job.id={build_job['CI_JOB_ID']}" in done.stderr

    # A dotenv whose job id was changed on the way: that job did not sign it.
    forged = {**deploy_job, "PROVENANCE_JOB_ID": "11111"}
    done = later.run("verify", "--public-key", str(pub), env=forged)
    assert done.returncode == 3, done.stderr
    assert "com.gitlab.ci.job.id" in done.stderr and "MISMATCH" in done.stderr


def test_another_pipeline_verifies_by_digest_what_identifies_the_build(
    runner: Runner,
    registry: Registry,
    context: Path,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    build_job = signed_in_a_build_job(runner, context, key, password, cosign)
    digest = dotenv_variables(runner.cwd / "provenance.env")["IMAGE_DIGEST"]
    # A release pipeline of the same commit: other pipeline, job and user; no dotenv.
    release = {
        **build_job,
        "CI_PIPELINE_ID": "5000",
        "CI_JOB_ID": "6000",
        "CI_PIPELINE_URL": "https://gitlab.example.com/x/-/pipelines/5000",
        "CI_JOB_URL": "https://gitlab.example.com/x/-/jobs/6000",
        "GITLAB_USER_NAME": "Release Bot",
    }
    later = job_elsewhere(runner, tmp_path / "release")
    done = later.run("verify", "--digest", digest, "--public-key", str(pub), env=release)
    assert done.returncode == 0, done.stderr
    assert (
        "com.gitlab.ci.commit.sha" in done.stderr and "com.gitlab.ci.pipeline.id" not in done.stderr
    )
    # Another commit's pipeline is not satisfied by this signature.
    other = {**release, "CI_COMMIT_SHA": "f" * 40}
    done = later.run("verify", "--digest", digest, "--public-key", str(pub), env=other)
    assert done.returncode == 3, done.stderr


def test_verify_tag_alone_resolves_the_tag_at_the_registry_and_verifies_that_digest(
    runner: Runner,
    registry: Registry,
    context: Path,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    build_job = signed_in_a_build_job(runner, context, key, password, cosign)
    tag = build_job["CI_COMMIT_SHORT_SHA"]
    digest = registry.digest(f"{build_job['CI_REGISTRY_IMAGE']}:{tag}")
    # A release script elsewhere: no dotenv, no digest, just the tag.
    release = {**build_job, "CI_PIPELINE_ID": "7000", "CI_JOB_ID": "7001"}
    later = job_elsewhere(runner, tmp_path / "release-script")
    done = later.run("verify", "--tag", tag, "--public-key", str(pub), env=release)
    assert done.returncode == 0, done.stderr
    assert f":{tag} names {digest} at the registry" in done.stderr
    assert f"tag {tag} -> {digest} ok" in done.stderr and "VERIFIED" in done.stderr


def build_jobs_part(report: dict[str, Any]) -> dict[str, Any]:
    """What the build job's tasks (build, sign) wrote in the report, field for field."""
    kept = {k: v for k, v in report.items() if k not in ("status", "failure", "tasks", "steps")}
    mine = ("build", "sign")
    return {
        # Later verdicts, and the run's registry traffic, which each task that passes adds to.
        **{k: v for k, v in kept.items() if k not in ("verify", "publish", "registry_traffic")},
        "tasks": [t for t in report["tasks"] if t["task"] in mine],
        "steps": [s for s in report["steps"] if s["task"] in mine],
    }


@pytest.mark.parametrize("cosign", ["cosign3"])  # the outputs are what this is about
def test_a_failed_downstream_verify_leaves_the_builds_outputs_for_a_good_one(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    build_job = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build", "--context", str(context), env=build_job)
    assert done.returncode == 0, done.stderr
    done = runner.run("sign", "--key", str(key), env=build_job)
    assert done.returncode == 0, done.stderr
    dotenv, report_file = runner.cwd / "provenance.env", runner.cwd / "provenance-report.json"
    verified_file = runner.cwd / "provenance-verified.env"
    handed, written = dotenv.read_bytes(), json.loads(report_file.read_text())
    assert [t["task"] for t in written["tasks"]] == ["build", "sign"]
    built = build_jobs_part(written)

    def intact() -> None:
        """The build's dotenv byte for byte, its part of the report field for field."""
        assert dotenv.read_bytes() == handed
        now = json.loads(report_file.read_text())
        assert build_jobs_part(now) == built
        assert now["tasks"][:2] == written["tasks"] and now["run"] == written["run"]
        assert not verified_file.exists() or verified_file.stat().st_size > 0

    # The deploy job: the build job's files as artifacts, its dotenv as GitLab's variables.
    deploy_job = {**build_job, "CI_JOB_ID": "98766", **dotenv_variables(dotenv)}

    # Bad input, before the plan said which run it continues: exit 2, and only added.
    done = runner.run("verify", "--public-key", str(pub) + ".missing", env=deploy_job)
    assert done.returncode == 2 and "cannot read public key" in done.stderr, done.stderr
    intact()
    assert not verified_file.exists()
    failed = json.loads(report_file.read_text())
    assert [(t["task"], t["status"]) for t in failed["tasks"]][2:] == [("verify", "failed")]
    assert failed["status"] == "failed" and failed["failure"]["exit_code"] == 2
    # The same from a job of another commit (a pipeline handed these artifacts): only added.
    other_commit = {**deploy_job, "CI_COMMIT_SHA": "f" * 40, "CI_COMMIT_SHORT_SHA": "f" * 8}
    done = runner.run("verify", "--public-key", str(pub) + ".missing", env=other_commit)
    assert done.returncode == 2, done.stderr
    intact()
    assert [t["task"] for t in json.loads(report_file.read_text())["tasks"]][2:] == [
        "verify",
        "verify",
    ]
    traffic = json.loads(report_file.read_text())["registry_traffic"]["requests"]
    assert traffic == written["registry_traffic"]["requests"]  # failed tasks added nothing
    done = runner.run("verify", "--public-key", str(pub), env=deploy_job)
    assert done.returncode == 0 and "VERIFIED" in done.stderr, done.stderr
    intact()
    assert json.loads(report_file.read_text())["registry_traffic"]["requests"] > traffic
    assert verified_file.read_text() == f"VERIFIED_IMAGE_REF={handed_ref(dotenv)}\n"
    assert json.loads(report_file.read_text())["status"] == "ok"

    # A signature that fails the policy (an annotation it doesn't carry): exit 3, only added.
    for task in ("verify", "publish"):
        done = runner.run(
            task, "--public-key", str(pub), "--annotation", "team=nobody", env=deploy_job
        )
        assert done.returncode == 3 and "MISMATCH" in done.stderr, done.stderr
        intact()
        ended = json.loads(report_file.read_text())
        assert ended["tasks"][-1]["task"] == task and ended["status"] == "failed"
        assert ended["failure"]["exit_code"] == 3
    assert not verified_file.exists()  # the failed verify pins nothing
    done = runner.run("verify", "--public-key", str(pub), env=deploy_job)
    assert done.returncode == 0 and "VERIFIED" in done.stderr, done.stderr
    intact()
    assert verified_file.read_text() == f"VERIFIED_IMAGE_REF={handed_ref(dotenv)}\n"
    # The publish's last try failed: the run stays failed until it passes.
    assert json.loads(report_file.read_text())["status"] == "failed"
    done = runner.run("publish", "--public-key", str(pub), env=deploy_job)
    assert done.returncode == 0, done.stderr
    assert json.loads(report_file.read_text())["status"] == "ok"


def handed_ref(dotenv: Path) -> str:
    return dotenv_variables(dotenv)["IMAGE_REF"]
