"""A GitLab branch pipeline's predefined variables, as the unit tests of the steps use them."""

from __future__ import annotations

SHA = "0123456789abcdef0123456789abcdef01234567"

#: Every variable GitLabProvider.context requires (see provenance_tasks/ci/gitlab.py), and the
#: usual others, for a branch pipeline without an ID token.
GITLAB_ENV: dict[str, str] = {
    "GITLAB_CI": "true",
    "CI": "true",
    "GITLAB_USER_NAME": "Jo Doe",
    "CI_PIPELINE_ID": "1001",
    "CI_PIPELINE_URL": "https://gitlab.example.com/group/proj/-/pipelines/1001",
    "CI_JOB_ID": "2002",
    "CI_JOB_URL": "https://gitlab.example.com/group/proj/-/jobs/2002",
    "CI_COMMIT_SHA": SHA,
    "CI_COMMIT_SHORT_SHA": SHA[:8],
    "CI_COMMIT_REF_NAME": "main",
    "CI_PROJECT_PATH": "group/proj",
    "CI_PROJECT_URL": "https://gitlab.example.com/group/proj",
    "CI_PROJECT_NAME": "proj",
    "CI_SERVER_URL": "https://gitlab.example.com",
    "CI_REGISTRY": "registry.example.com",
    "CI_REGISTRY_IMAGE": "registry.example.com/group/proj",
    "CI_REGISTRY_USER": "gitlab-ci-token",
    "CI_JOB_TOKEN": "glcbt-64_JOBTOKENxyzzy",
}
