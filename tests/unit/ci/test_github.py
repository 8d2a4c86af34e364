"""GitHub Actions: annotations, defaults and the expected signer, from default variables."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from provenance_tasks.ci.base import CIContext
from provenance_tasks.ci.github import GITHUB_ISSUER, GitHubProvider
from provenance_tasks.errors import InputError

SHA = "fedcba9876543210fedcba9876543210fedcba98"
GITHUB_TOKEN = "ghs_GITHUBTOKENxyzzy"
REQUEST_TOKEN = "REQUESTTOKENplugh"
COSIGN_PASSWORD = "COSIGNPASSWORDfrotz"

ENV: dict[str, str] = {
    "GITHUB_ACTIONS": "true",
    "CI": "true",
    "GITHUB_RUN_ID": "9001",
    "GITHUB_RUN_ATTEMPT": "2",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "Octo-Org/My.Repo",
    "GITHUB_WORKFLOW_REF": "Octo-Org/My.Repo/.github/workflows/build.yml@refs/heads/main",
    "GITHUB_SHA": SHA,
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_REF_NAME": "main",
    "GITHUB_REF_TYPE": "branch",
    "GITHUB_ACTOR": "octocat",
    "GITHUB_TOKEN": GITHUB_TOKEN,
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN,
}

REQUIRED = [
    "GITHUB_RUN_ID",
    "GITHUB_RUN_ATTEMPT",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "GITHUB_WORKFLOW_REF",
    "GITHUB_SHA",
    "GITHUB_REF",
    "GITHUB_ACTOR",
]


def jwt(claims: dict[str, object]) -> str:
    def seg(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS256'})}.{seg(claims)}.c2ln"


def context(**changes: str | None) -> CIContext:
    env = dict(ENV)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return GitHubProvider().context(env)


def test_matches_only_on_github_actions_true() -> None:
    provider = GitHubProvider()
    assert provider.name == "github"
    assert provider.matches({"GITHUB_ACTIONS": "true"})
    assert not provider.matches({"GITHUB_ACTIONS": "True"})
    assert not provider.matches({"CI": "true"})


def test_annotations_in_order() -> None:
    ctx = context()
    assert ctx.provider == "github"
    assert [(a.key, a.value) for a in ctx.annotations] == [
        ("com.github.actions.run.id", "9001"),
        ("com.github.actions.run.url", "https://github.com/Octo-Org/My.Repo/actions/runs/9001"),
        ("com.github.actions.run.attempt", "2"),
        (
            "com.github.actions.workflow.ref",
            "Octo-Org/My.Repo/.github/workflows/build.yml@refs/heads/main",
        ),
        ("com.github.actions.sha", SHA),
        ("com.github.actions.ref", "refs/heads/main"),
        ("com.github.actions.repository", "Octo-Org/My.Repo"),
        ("com.github.actions.actor", "octocat"),
        ("org.opencontainers.image.source", "https://github.com/Octo-Org/My.Repo"),
        ("org.opencontainers.image.revision", SHA),
    ]
    assert ctx.annotations[0].source == "GITHUB_RUN_ID"


def test_defaults_and_signer() -> None:
    ctx = context()
    assert ctx.default_repository == "ghcr.io/octo-org/my.repo"
    assert ctx.default_tags == (SHA[:8],)
    assert ctx.identity == (
        "https://github.com/Octo-Org/My.Repo/.github/workflows/build.yml@refs/heads/main"
    )
    assert ctx.issuer == GITHUB_ISSUER == "https://token.actions.githubusercontent.com"
    assert ctx.registry == "ghcr.io"
    assert ctx.registry_user == "octocat"
    assert ctx.registry_password == GITHUB_TOKEN
    assert ctx.registry_password_source == "GITHUB_TOKEN"
    assert ctx.id_token is None
    assert set(ctx.secrets) == {GITHUB_TOKEN, REQUEST_TOKEN}


def test_tag_run_adds_the_tag() -> None:
    ctx = context(GITHUB_REF="refs/tags/v2.0.0", GITHUB_REF_NAME="v2.0.0", GITHUB_REF_TYPE="tag")
    assert ctx.default_tags == (SHA[:8], "v2.0.0")
    assert ctx.labels["org.opencontainers.image.version"] == "v2.0.0"


def test_tag_run_needs_ref_name() -> None:
    with pytest.raises(InputError, match="GITHUB_REF_NAME"):
        context(GITHUB_REF_TYPE="tag", GITHUB_REF_NAME=None)


def test_token_claim_wins_for_reusable_workflows() -> None:
    token = jwt(
        {
            "iss": GITHUB_ISSUER,
            "job_workflow_ref": "octo-org/shared/.github/workflows/sign.yml@refs/tags/v1",
        }
    )
    ctx = context(SIGSTORE_ID_TOKEN=token, COSIGN_PASSWORD=COSIGN_PASSWORD)
    assert (
        ctx.identity == "https://github.com/octo-org/shared/.github/workflows/sign.yml@refs/tags/v1"
    )
    assert ctx.id_token == token
    assert set(ctx.secrets) == {GITHUB_TOKEN, REQUEST_TOKEN, token, COSIGN_PASSWORD}


def test_enterprise_server_url() -> None:
    ctx = context(GITHUB_SERVER_URL="https://github.example.com/")
    assert ctx.identity is not None
    assert ctx.identity.startswith("https://github.example.com/Octo-Org/")
    assert (
        ctx.annotations[1].value == "https://github.example.com/Octo-Org/My.Repo/actions/runs/9001"
    )


def test_no_token_means_no_password() -> None:
    ctx = context(GITHUB_TOKEN=None)
    assert ctx.registry_password is None
    assert ctx.registry_password_source is None


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_required_variable_is_named(name: str) -> None:
    with pytest.raises(InputError) as err:
        context(**{name: None})
    assert name in err.value.message
    assert err.value.hint is not None and name in err.value.hint
    assert GITHUB_TOKEN not in err.value.message + err.value.hint


def test_labels() -> None:
    assert dict(context().labels) == {
        "org.opencontainers.image.source": "https://github.com/Octo-Org/My.Repo",
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.version": SHA[:8],
        "org.opencontainers.image.title": "My.Repo",
        "org.opencontainers.image.url": "https://github.com/Octo-Org/My.Repo",
    }


def test_repr_hides_secrets() -> None:
    token = jwt({"job_workflow_ref": "o/r/.github/workflows/x.yml@refs/heads/main"})
    text = repr(context(SIGSTORE_ID_TOKEN=token, COSIGN_PASSWORD=COSIGN_PASSWORD))
    for secret in (GITHUB_TOKEN, REQUEST_TOKEN, token, COSIGN_PASSWORD):
        assert secret not in text


def test_the_commit_time_is_the_push_events_head_commit(tmp_path: Path) -> None:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps({"head_commit": {"id": SHA, "timestamp": "2024-05-01T12:00:00+02:00"}})
    )
    assert context(GITHUB_EVENT_PATH=str(event)).commit_time == 1714557600
    # Another commit's time (or no head_commit: a pull request) is no answer: git is asked.
    event.write_text(
        json.dumps({"head_commit": {"id": "f" * 40, "timestamp": "2024-05-01T10:00:00Z"}})
    )
    assert context(GITHUB_EVENT_PATH=str(event)).commit_time is None
    event.write_text(json.dumps({"pull_request": {}}))
    assert context(GITHUB_EVENT_PATH=str(event)).commit_time is None
    assert context(GITHUB_EVENT_PATH=str(tmp_path / "missing.json")).commit_time is None


def test_the_builder_is_the_workflow_and_the_invocation_this_attempt() -> None:
    ctx = context()
    workflow = ENV["GITHUB_WORKFLOW_REF"]
    assert ctx.config_path == workflow.split("@", 1)[0].split("/", 2)[-1]
    assert ctx.config_path.startswith(".github/workflows/")  # type: ignore[union-attr]
    assert ctx.builder_id == f"{ENV['GITHUB_SERVER_URL']}/{workflow.split('@', 1)[0]}"
    assert ctx.invocation_id is not None and ctx.invocation_id.endswith(
        f"/actions/runs/{ENV['GITHUB_RUN_ID']}/attempts/{ENV['GITHUB_RUN_ATTEMPT']}"
    )
