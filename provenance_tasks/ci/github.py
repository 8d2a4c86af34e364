"""GitHub Actions: provenance from the default environment variables, and the keyless signer.

The variables are the ones GitHub sets in every workflow run
(https://docs.github.com/en/actions/learn-github-actions/variables#default-environment-variables);
a missing one is named in the error rather than signed as an empty annotation.

The keyless identity is the workflow file at its ref. Inside a reusable workflow, the certificate
names the *called* workflow (the token's `job_workflow_ref` claim), not the caller that
GITHUB_WORKFLOW_REF names, so an ID token at hand is the authority.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from provenance_tasks.annotations import validate_annotation
from provenance_tasks.ci._env import GITHUB, ID_TOKEN_VARIABLE, get, secrets
from provenance_tasks.ci.base import CIContext, iso_time
from provenance_tasks.ci.oidc import claim, decode_claims
from provenance_tasks.models import Annotation
from provenance_tasks.references import sanitize_tag, validate_repository, validate_tag
from provenance_tasks.tag_rules import RefFacts

__all__ = ["GITHUB_ISSUER", "GitHubProvider"]

#: The OIDC issuer of GitHub Actions ID tokens on github.com.
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"

#: The registry GitHub's token can push to.
GITHUB_REGISTRY = "ghcr.io"

#: Variables whose values are secrets, for redaction.
SECRET_VARIABLES = (
    "GITHUB_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    ID_TOKEN_VARIABLE,
    "COSIGN_PASSWORD",
)

_LABEL = "org.opencontainers.image."

#: A re-run job's attempt is its own (the run's id and URL are the workflow run's): a later job
#: reads the signing job's from the dotenv.
OWN_ANNOTATIONS = MappingProxyType({"com.github.actions.run.attempt": "PROVENANCE_RUN_ATTEMPT"})
#: What only the workflow run that signed can know.
RUN_ANNOTATIONS = (
    "com.github.actions.run.id",
    "com.github.actions.run.url",
    "com.github.actions.run.attempt",
    "com.github.actions.actor",
)


def _event(environ: Mapping[str, str]) -> dict[str, object]:
    """The event payload at GITHUB_EVENT_PATH; empty when it is unset, unreadable or no object
    (what it would tell is then unknown, never an error: the build needs none of it)."""
    path = environ.get("GITHUB_EVENT_PATH")
    try:
        event = json.loads(Path(path).read_text(encoding="utf-8")) if path else None
    except (OSError, ValueError):
        return {}
    return event if isinstance(event, dict) else {}


def _head_commit_time(environ: Mapping[str, str], event: Mapping[str, object]) -> int | None:
    """When GITHUB_SHA was committed, if the event says (a push's head_commit); else None."""
    head = event.get("head_commit") or {}
    if not isinstance(head, dict) or head.get("id") != environ.get("GITHUB_SHA"):
        return None  # another commit's time is no answer
    return iso_time({"t": str(head.get("timestamp") or "")}, "t")


def _default_branch(
    environ: Mapping[str, str], event: Mapping[str, object]
) -> tuple[str | None, str]:
    """The repository's default branch from the event payload (no variable holds it), and where
    it came from or why it is unknown."""
    repository = event.get("repository")
    branch = repository.get("default_branch") if isinstance(repository, dict) else None
    if isinstance(branch, str) and branch:
        return branch, "repository.default_branch of the event at GITHUB_EVENT_PATH"
    if not environ.get("GITHUB_EVENT_PATH"):
        return None, "GITHUB_EVENT_PATH is not set"
    return None, "the event at GITHUB_EVENT_PATH has no repository.default_branch"


class GitHubProvider:
    """GitHub Actions, recognised by `GITHUB_ACTIONS=true`."""

    name = "github"

    def matches(self, environ: Mapping[str, str]) -> bool:
        return GITHUB.detected(environ)

    def context(self, environ: Mapping[str, str]) -> CIContext:
        server = GITHUB.require(environ, "GITHUB_SERVER_URL").rstrip("/")
        repository = GITHUB.require(environ, "GITHUB_REPOSITORY")
        run_id = GITHUB.require(environ, "GITHUB_RUN_ID")
        sha = GITHUB.require(environ, "GITHUB_SHA")
        workflow_ref = GITHUB.require(environ, "GITHUB_WORKFLOW_REF")
        repo_url = f"{server}/{repository}"

        def ann(key: str, value: str, source: str) -> Annotation:
            return validate_annotation(Annotation(key=key, value=value, source=source))

        annotations = (
            ann("com.github.actions.run.id", run_id, "GITHUB_RUN_ID"),
            ann(
                "com.github.actions.run.url",
                f"{repo_url}/actions/runs/{run_id}",
                "GITHUB_SERVER_URL/GITHUB_REPOSITORY/GITHUB_RUN_ID",
            ),
            ann(
                "com.github.actions.run.attempt",
                GITHUB.require(environ, "GITHUB_RUN_ATTEMPT"),
                "GITHUB_RUN_ATTEMPT",
            ),
            ann("com.github.actions.workflow.ref", workflow_ref, "GITHUB_WORKFLOW_REF"),
            ann("com.github.actions.sha", sha, "GITHUB_SHA"),
            ann("com.github.actions.ref", GITHUB.require(environ, "GITHUB_REF"), "GITHUB_REF"),
            ann("com.github.actions.repository", repository, "GITHUB_REPOSITORY"),
            ann(
                "com.github.actions.actor", GITHUB.require(environ, "GITHUB_ACTOR"), "GITHUB_ACTOR"
            ),
            ann("org.opencontainers.image.source", repo_url, "GITHUB_SERVER_URL/GITHUB_REPOSITORY"),
            ann("org.opencontainers.image.revision", sha, "GITHUB_SHA"),
        )

        short_sha = validate_tag(sha[:8], "GITHUB_SHA")
        tag_name: str | None = None
        tags = [short_sha]
        if environ.get("GITHUB_REF_TYPE") == "tag":
            tag_name = GITHUB.require(environ, "GITHUB_REF_NAME")
            tags.append(sanitize_tag(tag_name, "GITHUB_REF_NAME"))

        default_repository = validate_repository(
            f"{GITHUB_REGISTRY}/{repository.lower()}", "GITHUB_REPOSITORY"
        )

        event = _event(environ)
        default_branch, default_branch_source = _default_branch(environ, event)
        refs = RefFacts(
            short_sha=short_sha,
            sha_source="GITHUB_SHA",
            ref_name=tag_name or get(environ, "GITHUB_REF_NAME"),
            ref_source="GITHUB_REF_NAME",
            is_tag=tag_name is not None,
            default_branch=default_branch,
            default_branch_source=default_branch_source,
            # A pull request's ref (refs/pull/123/merge, GITHUB_REF_NAME 123/merge) is no branch.
            is_merge_request=GITHUB.require(environ, "GITHUB_REF").startswith("refs/pull/"),
        )

        id_token = get(environ, ID_TOKEN_VARIABLE)
        claims = decode_claims(id_token)
        job_workflow_ref = claim(claims, "job_workflow_ref")
        identity = f"{server}/{job_workflow_ref or workflow_ref}"
        issuer = claim(claims, "iss") or GITHUB_ISSUER

        password = get(environ, "GITHUB_TOKEN")

        labels = {
            f"{_LABEL}source": repo_url,
            f"{_LABEL}revision": sha,
            f"{_LABEL}version": tag_name or short_sha,
            f"{_LABEL}title": repository.rsplit("/", 1)[-1],
            f"{_LABEL}url": repo_url,
        }

        return CIContext(
            provider=self.name,
            detected="GitHub Actions (GITHUB_ACTIONS=true)",
            own_annotations=OWN_ANNOTATIONS,
            run_annotations=RUN_ANNOTATIONS,
            annotations=annotations,
            labels=MappingProxyType(labels),
            default_repository=default_repository,
            default_tags=tuple(dict.fromkeys(tags)),
            identity=identity,
            issuer=issuer,
            registry=GITHUB_REGISTRY,
            registry_user=get(environ, "GITHUB_ACTOR"),
            registry_password=password,
            registry_password_source="GITHUB_TOKEN" if password is not None else None,
            id_token=id_token,
            id_token_source=ID_TOKEN_VARIABLE if id_token is not None else None,
            secrets=secrets(environ, SECRET_VARIABLES),
            keyless_by_default=True,
            keyless_hint="give the job `permissions: id-token: write`, or pass SIGSTORE_ID_TOKEN "
            "with the audience sigstore",
            output_file_variable="GITHUB_OUTPUT",
            identity_claim="job_workflow_ref",
            identity_prefix=f"{server}/",
            # A push event says when its head commit was made; other events ask git.
            commit_time=_head_commit_time(environ, event),
            commit_time_source="the push event's head_commit.timestamp",
            builder_id=identity.rsplit("@", 1)[0],  # the workflow, not one ref of it
            invocation_id=f"{repo_url}/actions/runs/{run_id}/attempts/"
            f"{GITHUB.require(environ, 'GITHUB_RUN_ATTEMPT')}",
            source_ref=GITHUB.require(environ, "GITHUB_REF"),
            # owner/repo/.github/workflows/build.yml@refs/heads/main: the file's path in the repo
            config_path=workflow_ref.split("@", 1)[0].split("/", 2)[-1],
            runner=get(environ, "RUNNER_NAME"),
            refs=refs,
        )
