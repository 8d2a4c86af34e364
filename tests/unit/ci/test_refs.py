"""The facts each provider gives the tag rules (`CIContext.refs`), read from its environment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from provenance_tasks.ci import local
from provenance_tasks.ci.github import GitHubProvider
from provenance_tasks.ci.gitlab import GitLabProvider
from provenance_tasks.ci.local import GitFacts, LocalProvider, UnknownCIProvider
from provenance_tasks.tag_rules import RefFacts, expand

SHA = "0123456789abcdef0123456789abcdef01234567"

GITLAB: dict[str, str] = {
    "GITLAB_CI": "true",
    "GITLAB_USER_NAME": "Jo",
    "CI_PIPELINE_ID": "1",
    "CI_PIPELINE_URL": "https://gitlab.example.com/g/p/-/pipelines/1",
    "CI_JOB_ID": "2",
    "CI_JOB_URL": "https://gitlab.example.com/g/p/-/jobs/2",
    "CI_COMMIT_SHA": SHA,
    "CI_COMMIT_SHORT_SHA": "01234567",
    "CI_COMMIT_REF_NAME": "feature/x",
    "CI_COMMIT_TAG": "",  # GitLab sets some variables empty rather than unset
    "CI_DEFAULT_BRANCH": "main",
    "CI_PROJECT_PATH": "g/p",
    "CI_PROJECT_URL": "https://gitlab.example.com/g/p",
    "CI_SERVER_URL": "https://gitlab.example.com",
}

GITHUB: dict[str, str] = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_RUN_ID": "9",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "octo/app",
    "GITHUB_WORKFLOW_REF": "octo/app/.github/workflows/build.yml@refs/heads/dev",
    "GITHUB_SHA": SHA,
    "GITHUB_REF": "refs/heads/dev",
    "GITHUB_REF_NAME": "dev",
    "GITHUB_REF_TYPE": "branch",
    "GITHUB_ACTOR": "octocat",
}
EVENT_SOURCE = "repository.default_branch of the event at GITHUB_EVENT_PATH"


def env(base: dict[str, str], **changes: str | None) -> dict[str, str]:
    result = dict(base)
    for name, value in changes.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


def gitlab_refs(**changes: str | None) -> RefFacts | None:
    return GitLabProvider().context(env(GITLAB, **changes)).refs


def github_refs(**changes: str | None) -> RefFacts | None:
    return GitHubProvider().context(env(GITHUB, **changes)).refs


def event_file(tmp_path: Path, payload: object) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    return str(path)


def test_gitlab_branch_pipeline() -> None:
    assert gitlab_refs() == RefFacts(
        short_sha="01234567",
        sha_source="CI_COMMIT_SHORT_SHA",
        ref_name="feature/x",
        ref_source="CI_COMMIT_REF_NAME",
        is_tag=False,
        default_branch="main",
        default_branch_source="CI_DEFAULT_BRANCH",
    )


def test_gitlab_tag_pipeline_keeps_its_default_tags() -> None:
    ctx = GitLabProvider().context(
        env(GITLAB, CI_COMMIT_TAG="v1.2.3+b7", CI_COMMIT_REF_NAME="v1.2.3+b7")
    )
    assert ctx.refs is not None
    assert (ctx.refs.ref_name, ctx.refs.ref_source, ctx.refs.is_tag) == (
        "v1.2.3+b7",
        "CI_COMMIT_TAG",
        True,
    )
    assert ctx.default_tags == ("01234567", "v1.2.3-b7")
    assert expand(("type=semver", "type=ref", "type=sha"), ctx.refs) == (
        ("1.2.3-b7", "1.2", "1", "v1.2.3-b7", "01234567"),
        (),
    )


def test_gitlab_short_sha_falls_back_to_the_full_sha() -> None:
    refs = gitlab_refs(CI_COMMIT_SHORT_SHA=None)
    assert refs is not None
    assert (refs.short_sha, refs.sha_source) == (SHA[:8], "CI_COMMIT_SHA")


def test_gitlab_without_default_branch() -> None:
    refs = gitlab_refs(CI_DEFAULT_BRANCH="")
    assert refs is not None
    assert (refs.default_branch, refs.default_branch_source) == (
        None,
        "CI_DEFAULT_BRANCH is not set",
    )


def test_gitlab_merge_request_is_not_the_default_branch() -> None:
    refs = gitlab_refs(CI_COMMIT_REF_NAME="main", CI_MERGE_REQUEST_IID="5")
    assert refs is not None and refs.is_merge_request
    assert expand(("type=raw,value=latest,enable=default-branch",), refs)[0] == ()
    main = gitlab_refs(CI_COMMIT_REF_NAME="main")
    assert main is not None and not main.is_merge_request
    assert expand(("type=raw,value=latest,enable=default-branch",), main)[0] == ("latest",)


def test_github_branch_with_the_default_branch_from_the_event(tmp_path: Path) -> None:
    path = event_file(tmp_path, {"repository": {"default_branch": "dev"}})
    assert github_refs(GITHUB_EVENT_PATH=path) == RefFacts(
        short_sha=SHA[:8],
        sha_source="GITHUB_SHA",
        ref_name="dev",
        ref_source="GITHUB_REF_NAME",
        is_tag=False,
        default_branch="dev",
        default_branch_source=EVENT_SOURCE,
    )


def test_github_tag_keeps_its_default_tags() -> None:
    ctx = GitHubProvider().context(
        env(
            GITHUB,
            GITHUB_REF="refs/tags/v2.0.0-rc.1",
            GITHUB_REF_NAME="v2.0.0-rc.1",
            GITHUB_REF_TYPE="tag",
        )
    )
    assert ctx.refs is not None
    assert (ctx.refs.ref_name, ctx.refs.is_tag) == ("v2.0.0-rc.1", True)
    assert ctx.default_tags == (SHA[:8], "v2.0.0-rc.1")
    assert expand(("type=semver",), ctx.refs) == (("2.0.0-rc.1",), ())


def test_github_pull_request() -> None:
    refs = github_refs(GITHUB_REF="refs/pull/12/merge", GITHUB_REF_NAME="12/merge")
    assert refs is not None
    assert (refs.ref_name, refs.is_tag, refs.is_merge_request) == ("12/merge", False, True)


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        b"\xff\xfe{",  # not UTF-8
        b"[1, 2]",
        b'{"repository": "octo/app"}',
        b'{"repository": {"default_branch": 7}}',
        b'{"repository": {"default_branch": ""}}',
        b"{}",
    ],
)
def test_github_event_without_a_default_branch(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "event.json"
    path.write_bytes(payload)
    refs = github_refs(GITHUB_EVENT_PATH=str(path))
    assert refs is not None
    assert (refs.default_branch, refs.default_branch_source) == (
        None,
        "the event at GITHUB_EVENT_PATH has no repository.default_branch",
    )


def test_github_event_missing(tmp_path: Path) -> None:
    refs = github_refs(GITHUB_EVENT_PATH=str(tmp_path / "missing.json"))
    assert refs is not None and refs.default_branch is None
    unset = github_refs()
    assert unset is not None
    assert (unset.default_branch, unset.default_branch_source) == (
        None,
        "GITHUB_EVENT_PATH is not set",
    )


@pytest.mark.parametrize(
    ("facts", "short_sha", "ref_name"),
    [
        (GitFacts(sha=SHA, ref_name="topic"), SHA[:8], "topic"),
        (GitFacts(sha=SHA), SHA[:8], None),  # detached HEAD
        (GitFacts(), None, None),  # no git, or no commit yet
    ],
)
def test_local_refs_from_git(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    facts: GitFacts,
    short_sha: str | None,
    ref_name: str | None,
) -> None:
    monkeypatch.setattr(local, "git_facts", lambda cwd: facts)
    ctx = LocalProvider(cwd=tmp_path).context({})
    assert ctx.refs == RefFacts(
        short_sha=short_sha,
        sha_source="git rev-parse HEAD",
        ref_name=ref_name,
        ref_source="git rev-parse --abbrev-ref HEAD",
        is_tag=False,
        default_branch=None,
        default_branch_source="a local run does not know it",
    )
    assert ctx.default_tags == (short_sha or "latest",)


def test_unknown_ci_gives_no_refs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(local, "git_facts", lambda cwd: GitFacts(sha=SHA, ref_name="main"))
    assert UnknownCIProvider(cwd=tmp_path).context({"CI": "true"}).refs is None
