"""Predefined variables as GitLab sets them, for a simulated pipeline on the test bed's registry."""

from __future__ import annotations

import hashlib
import uuid

from tests.testbed.bed import TestBed

SERVER = "https://gitlab.example.com"
ANNOTATION_VARIABLES = {
    "com.gitlab.ci.user.name": "GITLAB_USER_NAME",
    "com.gitlab.ci.pipeline.id": "CI_PIPELINE_ID",
    "com.gitlab.ci.pipeline.url": "CI_PIPELINE_URL",
    "com.gitlab.ci.job.id": "CI_JOB_ID",
    "com.gitlab.ci.job.url": "CI_JOB_URL",
    "com.gitlab.ci.commit.sha": "CI_COMMIT_SHA",
    "com.gitlab.ci.commit.ref.name": "CI_COMMIT_REF_NAME",
    "com.gitlab.ci.project.path": "CI_PROJECT_PATH",
    "org.opencontainers.image.source": "CI_PROJECT_URL",
    "org.opencontainers.image.revision": "CI_COMMIT_SHA",
}


#: When the fake commits were made: GitLab says it in CI_COMMIT_TIMESTAMP.
COMMIT_TIMESTAMP = "2026-11-30T12:00:00+00:00"


def gitlab(
    testbed: TestBed,
    *,
    project: str | None = None,
    ref: str = "main",
    tag: str | None = None,
    user_name: str = "Doe, Jo Ünïcode",
    config_path: str = ".gitlab-ci.yml",
) -> dict[str, str]:
    project = project or f"group/project-{uuid.uuid4().hex[:6]}"
    sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()  # noqa: S324 - a fake commit id
    pipeline, job = "4242", "98765"
    url = f"{SERVER}/{project}"
    env = {
        "CI": "true",
        "GITLAB_CI": "true",
        "CI_SERVER_URL": SERVER,
        "CI_PROJECT_URL": url,
        "CI_PROJECT_PATH": project,
        "CI_PROJECT_NAME": project.rsplit("/", 1)[-1],
        "CI_CONFIG_PATH": config_path,
        "CI_COMMIT_SHA": sha,
        "CI_COMMIT_SHORT_SHA": sha[:8],
        "CI_COMMIT_REF_NAME": tag or ref,
        "CI_COMMIT_TIMESTAMP": COMMIT_TIMESTAMP,
        "CI_PIPELINE_ID": pipeline,
        "CI_PIPELINE_URL": f"{url}/-/pipelines/{pipeline}",
        "CI_JOB_ID": job,
        "CI_JOB_URL": f"{url}/-/jobs/{job}",
        "GITLAB_USER_NAME": user_name,
        "CI_REGISTRY": testbed.secure_registry,
        "CI_REGISTRY_IMAGE": f"{testbed.secure_registry}/{project}",
        "CI_REGISTRY_USER": testbed.username,
        "CI_REGISTRY_PASSWORD": testbed.password,
        "CI_JOB_TOKEN": "job-token-" + uuid.uuid4().hex,
    }
    if tag:
        env["CI_COMMIT_TAG"] = tag
    return env


def gitlab_key_mode(testbed: TestBed, cosign: str, password: str, **changes: str) -> dict[str, str]:
    """A GitLab pipeline that signs with a key: the key's password and the cosign to use."""
    env = gitlab(testbed, **changes)  # type: ignore[arg-type]
    env.update({"COSIGN_PASSWORD": password, "INVOKE_PROVENANCE_COSIGN": cosign})
    return env


def expected_annotations(env: dict[str, str], tag: str) -> dict[str, str]:
    """The eleven annotations of the tutorial, as the signature must carry them."""
    values = {key: env[var] for key, var in ANNOTATION_VARIABLES.items()}
    values["tag"] = tag
    return values


def identity(env: dict[str, str]) -> str:
    kind, name = (
        ("tags", env["CI_COMMIT_TAG"])
        if "CI_COMMIT_TAG" in env
        else ("heads", env["CI_COMMIT_REF_NAME"])
    )
    return f"{env['CI_PROJECT_URL']}//{env['CI_CONFIG_PATH']}@refs/{kind}/{name}"


def github(testbed: TestBed, *, repository: str = "octo-org/app") -> dict[str, str]:
    """A GitHub Actions branch run pushing to the test bed's TLS registry (REGISTRY_PASSWORD)."""
    sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()  # noqa: S324 - a fake commit id
    return {
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": "9001",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": repository,
        "GITHUB_WORKFLOW_REF": f"{repository}/.github/workflows/build.yml@refs/heads/main",
        "GITHUB_SHA": sha,
        "GITHUB_REF": "refs/heads/main",
        "GITHUB_REF_NAME": "main",
        "GITHUB_REF_TYPE": "branch",
        "GITHUB_ACTOR": "octocat",
        "INVOKE_PROVENANCE_IMAGE": f"{testbed.secure_registry}/{repository}-{uuid.uuid4().hex[:6]}",
        "INVOKE_PROVENANCE_REGISTRY": testbed.secure_registry,
        "INVOKE_PROVENANCE_USERNAME": testbed.username,
        "INVOKE_PROVENANCE_PASSWORD_ENV": "REGISTRY_PASSWORD",
        "REGISTRY_PASSWORD": testbed.password,
    }
