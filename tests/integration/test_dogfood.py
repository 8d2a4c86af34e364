"""The project's own pipeline (.gitlab-ci.yml) runs for real under gitlab-ci-local, as
test_components runs the example's: a throwaway git repository whose remote makes this commit's
components local, the shell executor, the test bed's engine, registry and Sigstore.

The default branch: the job image built from images/job by this commit's build-sign-verify
component, signed keyless, attested and verified, then verified again by the verify component;
cosign 2 and 3 and the tool (as the README tells a user to) verify its signature and SLSA
provenance against that pipeline's identity. Then ci/release pins its digest and tags, and the
tag pipeline's verify of the pinned digest runs. The catalog release (`release:`) is not
something gitlab-ci-local implements: tests/unit/test_ci_files.py checks it against the schema.

What the test leaves out, and why: the installs of the context job (apt, ci/install-tools, the
venv: done on this machine; its gathering runs, from the test bed's mmdebstrap base) and of the
tag job (apk, pip: the tool and cosign are on PATH here); the unit-test jobs, which `ci/test
unit` runs.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import Registry, Runner, annotations_of
from tests.integration.test_attest import statements
from tests.integration.test_components import (
    job_log,
    on_the_test_bed,
    pipeline_variables,
    project,
    run_pipeline,
)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
#: What ci/release reads and writes, besides the templates.
RELEASE_FILES = ("ci/release", "CHANGELOG.md", "action.yml", "provenance_tasks/__init__.py")
#: What the pipeline's runs leave in the project, which a release wants clean.
IGNORED = """.gitlab-ci-local/
.home/
/provenance*.json
/provenance*.env
/job-image.env
/pinned.env
/images/job/debs/
/images/job/wheels/
"""


def dogfood_pipeline(runner: Runner, base: str) -> dict[str, object]:
    """.gitlab-ci.yml with the test's own parts (the module's docstring says which)."""
    pipeline = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    for job in ("unit-tests", "components-schema", ".default-branch"):
        del pipeline[job]
    build = next(i for i in pipeline["include"] if "/build-sign-verify@" in i["component"])
    assert build["inputs"]["job_name"] == "job-image"
    build["inputs"].update(on_the_test_bed(runner.testbed.docker_host))
    context_job = pipeline["job-image-context"]
    assert context_job["artifacts"]["reports"]["dotenv"] == "job-image.env"
    *_, gather = context_job["script"]
    assert gather.startswith(".venv/bin/python -m tests.testbed.job_image_context images/job ")
    # This venv's Python (the throwaway repository has none), and the test bed's base.
    context_job["script"] = [
        f"{sys.executable}{gather.removeprefix('.venv/bin/python')} --base {base}"
    ]
    tag_job = pipeline["verify-pinned-job-image"]
    installs = tag_job["script"][:2]
    assert installs[0].startswith("apk add") and installs[1].startswith("pip install")
    del tag_job["script"][:2]
    return pipeline  # type: ignore[no-any-return]


def test_the_projects_own_pipeline_builds_signs_and_verifies_its_job_image_and_its_release(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
) -> None:
    from tests.testbed import debian, jobimage

    folder = tmp_path / "provenance-tasks"
    base = jobimage.push_base(runner.testbed, debian.base())

    shutil.copytree(ROOT / "images" / "job", folder / "images" / "job")
    for name in RELEASE_FILES:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, folder / name)
    pipeline = dogfood_pipeline(runner, base)
    sha = project(folder, pipeline, [], {".gitignore": IGNORED})
    # tests.testbed.job_image_context from this checkout (the throwaway repository has no tests),
    # not shadowed by the repository's copy of provenance_tasks/__init__.py (the release's).
    extra = {"INVOKE_PROVENANCE_COSIGN": "cosign3", "PYTHONPATH": str(ROOT), "PYTHONSAFEPATH": "1"}
    variables = pipeline_variables(runner, sha, extra)
    done = run_pipeline(runner, folder, variables)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]

    assert "verification: VERIFIED" in job_log(folder, "job-image")
    assert "verification: VERIFIED" in job_log(folder, "verify-job-image")
    report = json.loads((folder / "provenance-report.json").read_text())
    ref = report["outputs"]["IMAGE_REF"]
    assert ref.startswith(f"{variables['CI_REGISTRY_IMAGE']}/job@sha256:")
    assert [t["task"] for t in report["tasks"]] == ["build-sign-verify", "verify"]

    identity = f"{variables['CI_PROJECT_URL']}//.gitlab-ci.yml@refs/heads/main"
    issuer = variables["CI_SERVER_URL"]
    policy = ["--certificate-identity", identity, "--certificate-oidc-issuer", issuer]
    for cosign in ("cosign2", "cosign3"):
        (payload, *_) = registry.payloads(cosign, ref, *policy)
        assert annotations_of(payload)["com.gitlab.ci.commit.sha"] == sha
        found = statements(registry, cosign, ref, *policy)
        assert found, f"{cosign}: no SLSA provenance"
        assert all(s["predicateType"] == "https://slsa.dev/provenance/v1" for s in found)

    # The README's check before pinning a digest: the tool's own verify, outside any CI and any
    # git repository, the signer and the short commit the signature names.
    repository, digest = ref.split("@")
    the_readmes_check(runner, tmp_path / "outside", repository, digest, sha, identity, issuer)

    # The release pins that digest and tags; the tag pipeline verifies what the templates pin
    # against the default-branch pipeline of the release's parent, which built it.
    version = yaml.safe_load((folder / "action.yml").read_text())["inputs"]["version"]["default"]
    assert release(folder, version, digest, repository).returncode == 0
    tag = ["--variable", f"CI_COMMIT_TAG={version}", "--variable", "CI_COMMIT_BRANCH="]
    tag += ["--ignore-predefined-vars", "CI_COMMIT_BRANCH", "verify-pinned-job-image"]
    done = run_pipeline(runner, folder, variables, *tag)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    log = re.sub(r"\x1b\[[0-9;]*m", "", job_log(folder, "verify-pinned-job-image"))
    # Signed by the default-branch pipeline of the commit the release was made from.
    assert re.search(rf"ok +com\.gitlab\.ci\.commit\.sha = '{sha}'", log), log[-4000:]
    assert re.search(r"ok +com\.gitlab\.ci\.commit\.ref\.name = 'main'", log), log[-4000:]
    assert "verification: VERIFIED" in log and "verify-attestation: ok" in log, log[-4000:]
    assert (folder / "pinned.env").read_text() == f"PINNED_JOB_IMAGE={ref}\n"

    # A release made from another commit than the one whose pipeline built the digest: the tag
    # pipeline refuses it (exit 3, the commit the signature names), and no catalog release follows.
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for argv in (
        ["git", "tag", "-d", version],
        ["git", "reset", "-q", "--hard", sha],
        [*git, "commit", "-q", "--allow-empty", "-m", "a commit no pipeline built"],
    ):
        subprocess.run(argv, cwd=folder, check=True, capture_output=True)
    assert release(folder, version, digest, repository).returncode == 0
    done = run_pipeline(runner, folder, variables, *tag)
    assert done.returncode != 0
    log = re.sub(r"\x1b\[[0-9;]*m", "", job_log(folder, "verify-pinned-job-image"))
    assert "FAILED in step verify (exit 3)" in log, log[-4000:]
    assert re.search(r"com\.gitlab\.ci\.commit\.sha", log), log[-4000:]


def release(
    folder: Path, version: str, digest: str, repository: str
) -> subprocess.CompletedProcess[str]:
    """ci/release in the throwaway repository (its pin tests run in the unit tests)."""
    done = subprocess.run(
        ["bash", "ci/release", version, "--digest", digest, "--image", repository],
        cwd=folder,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTEST": "true",
            "GIT_AUTHOR_NAME": "ci",
            "GIT_AUTHOR_EMAIL": "ci@example.com",
            "GIT_COMMITTER_NAME": "ci",
            "GIT_COMMITTER_EMAIL": "ci@example.com",
        },
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def the_readmes_check(
    runner: Runner, folder: Path, repository: str, digest: str, sha: str, identity: str, issuer: str
) -> None:
    folder.mkdir()
    login = {
        "INVOKE_PROVENANCE_REGISTRY": runner.testbed.secure_registry,
        "INVOKE_PROVENANCE_USERNAME": runner.testbed.username,
        "INVOKE_PROVENANCE_PASSWORD_ENV": "REGISTRY_PASSWORD",
        "REGISTRY_PASSWORD": runner.testbed.password,
        "INVOKE_PROVENANCE_COSIGN": "cosign3",
    }
    flags = ["--mode", "keyless", "--image", repository, "--digest", digest, "--tag", sha[:8]]
    flags += ["--identity", identity, "--issuer", issuer]
    builder = ["--builder-id", identity.split("@refs/", 1)[0]]
    for task, more in (("verify", []), ("verify-attestation", builder)):
        checked = subprocess.run(
            [sys.executable, "-m", "provenance_tasks.cli", task, *flags, *more],
            cwd=folder,
            env=runner.env(login),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert checked.returncode == 0, f"{task}: {checked.stdout[-3000:]}{checked.stderr[-3000:]}"
