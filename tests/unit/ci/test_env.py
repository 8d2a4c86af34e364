"""The CI environment, read in one place: which CI a job is in, and a CI's variables."""

from __future__ import annotations

import io

import pytest

from provenance_tasks.ci import _env, select_provider
from provenance_tasks.ci.github import GitHubProvider
from provenance_tasks.ci.gitlab import GitLabProvider
from provenance_tasks.errors import InputError
from provenance_tasks.logs import markers
from provenance_tasks.logs import setup as log_setup

#: (environment, GitLab's job, GitHub's job, some CI); detection is a function of these alone.
DETECTION = [
    ({}, False, False, False),
    ({"GITLAB_CI": "true", "CI": "true"}, True, False, True),
    ({"GITHUB_ACTIONS": "true", "CI": "true"}, False, True, True),
    ({"GITLAB_CI": "false", "CI": "true"}, False, False, True),  # gitlab-ci-local
    ({"GITLAB_CI": "True"}, False, False, False),  # exactly "true", as each CI sets it
    ({"GITHUB_ACTIONS": "1"}, False, False, False),
    ({"CI": " Yes "}, False, False, True),
    ({"CI": "1"}, False, False, True),
    ({"CI": "false"}, False, False, False),
    ({"CI": ""}, False, False, False),
]


@pytest.mark.parametrize(("environ", "gitlab", "github", "some_ci"), DETECTION)
def test_which_ci_a_job_is_in_is_read_from_the_environment_alone(
    environ: dict[str, str], gitlab: bool, github: bool, some_ci: bool
) -> None:
    assert _env.GITLAB.detected(environ) is gitlab
    assert _env.GITHUB.detected(environ) is github
    assert _env.ci_is_set(environ) is some_ci


@pytest.mark.parametrize(("environ", "gitlab", "github", "some_ci"), DETECTION)
def test_the_logs_and_the_providers_recognise_a_ci_alike(
    environ: dict[str, str], gitlab: bool, github: bool, some_ci: bool
) -> None:
    """The runner the logs write for is the CI the providers detect: one test, both asked."""
    lines: list[str] = []
    written = markers.for_environment(environ, "console", lines.append)
    assert written.name == ("github" if github else "gitlab" if gitlab else "")
    assert log_setup.wants_colour(environ, io.StringIO()) is (gitlab or github)
    provider = select_provider(environ).name
    expected = "gitlab" if gitlab else "github" if github else "unknown-ci" if some_ci else "local"
    assert provider == expected


def test_an_empty_variable_is_unset() -> None:
    environ = {"SET": "value", "EMPTY": ""}
    assert _env.get(environ, "SET") == "value"
    assert _env.get(environ, "EMPTY") is None
    assert _env.get(environ, "ABSENT") is None


def test_secrets_are_the_values_set_each_once_in_order() -> None:
    environ = {"A": "one", "B": "", "C": "two", "D": "one"}
    assert _env.secrets(environ, ("C", "A", "B", "D", "E")) == ("two", "one")


@pytest.mark.parametrize(
    ("provider", "environ", "message", "hint"),
    [
        (
            GitLabProvider(),
            {"GITLAB_CI": "true", "GITLAB_USER_NAME": ""},
            "GITLAB_USER_NAME is not set: it is a GitLab predefined variable, set in every "
            "GitLab CI job",
            "outside GitLab, export GITLAB_USER_NAME=... yourself, or unset GITLAB_CI to run in "
            "local mode",
        ),
        (
            GitHubProvider(),
            {"GITHUB_ACTIONS": "true"},
            "GITHUB_SERVER_URL is not set: it is a GitHub Actions default variable, set in every "
            "workflow run",
            "outside GitHub Actions, export GITHUB_SERVER_URL=... yourself, or unset "
            "GITHUB_ACTIONS to run in local mode",
        ),
    ],
)
def test_a_variable_the_ci_always_sets_is_named_when_missing(
    provider: GitLabProvider | GitHubProvider, environ: dict[str, str], message: str, hint: str
) -> None:
    with pytest.raises(InputError) as caught:
        provider.context(environ)
    assert (caught.value.message, caught.value.hint, caught.value.exit_code) == (message, hint, 2)
