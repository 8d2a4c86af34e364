"""GitLab CI: provenance from GitLab's predefined variables, and the signer a keyless job has.

Everything comes from variables GitLab sets in every job
(https://docs.gitlab.com/ee/ci/variables/predefined_variables.html), so a missing one means the
job runs outside GitLab or with an unusual setup; the message names the variable instead of letting
an empty annotation be signed.

The ID token (`SIGSTORE_ID_TOKEN`, from the job's `id_tokens:`) is the authority for the keyless
identity when it is at hand: its `ci_config_ref_uri` claim is exactly what Fulcio will put in the
certificate, including cases the variables cannot express (a CI configuration kept in another
project, merge request refs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

from provenance_tasks.annotations import validate_annotation
from provenance_tasks.ci._env import GITLAB, ID_TOKEN_VARIABLE, get, secrets
from provenance_tasks.ci.base import CIContext, iso_time
from provenance_tasks.ci.oidc import SIGSTORE_AUDIENCE, claim, decode_claims
from provenance_tasks.models import Annotation
from provenance_tasks.references import sanitize_tag, validate_repository, validate_tag
from provenance_tasks.tag_rules import RefFacts

__all__ = ["GITLAB_ID_TOKEN_HINT", "GitLabProvider"]

#: What a job needs in .gitlab-ci.yml for keyless signing (for the signing step's message).
GITLAB_ID_TOKEN_HINT = f"id_tokens: {ID_TOKEN_VARIABLE}: aud: {SIGSTORE_AUDIENCE}"

#: GitLab's default CI configuration path, used when CI_CONFIG_PATH is unset.
DEFAULT_CONFIG_PATH = ".gitlab-ci.yml"

#: The annotations, in order: (key, variable).
ANNOTATION_VARIABLES: tuple[tuple[str, str], ...] = (
    ("com.gitlab.ci.user.name", "GITLAB_USER_NAME"),
    ("com.gitlab.ci.pipeline.id", "CI_PIPELINE_ID"),
    ("com.gitlab.ci.pipeline.url", "CI_PIPELINE_URL"),
    ("com.gitlab.ci.job.id", "CI_JOB_ID"),
    ("com.gitlab.ci.job.url", "CI_JOB_URL"),
    ("com.gitlab.ci.commit.sha", "CI_COMMIT_SHA"),
    ("com.gitlab.ci.commit.ref.name", "CI_COMMIT_REF_NAME"),
    ("com.gitlab.ci.project.path", "CI_PROJECT_PATH"),
    ("org.opencontainers.image.source", "CI_PROJECT_URL"),
    ("org.opencontainers.image.revision", "CI_COMMIT_SHA"),
)

#: The signing job's own values: a later job of the pipeline reads them from the dotenv.
OWN_ANNOTATIONS = MappingProxyType(
    {"com.gitlab.ci.job.id": "PROVENANCE_JOB_ID", "com.gitlab.ci.job.url": "PROVENANCE_JOB_URL"}
)
#: What only the pipeline that signed can know: who ran it, which pipeline, which job.
RUN_ANNOTATIONS = (
    "com.gitlab.ci.user.name",
    "com.gitlab.ci.pipeline.id",
    "com.gitlab.ci.pipeline.url",
    "com.gitlab.ci.job.id",
    "com.gitlab.ci.job.url",
)

#: The variables a registry password is read from, the first set one wins.
JOB_TOKEN_VARIABLE = "CI_JOB_TOKEN"  # noqa: S105 - a variable name
PASSWORD_VARIABLES = ("CI_REGISTRY_PASSWORD", JOB_TOKEN_VARIABLE)

#: Variables whose values are secrets, for redaction.
SECRET_VARIABLES = (*PASSWORD_VARIABLES, ID_TOKEN_VARIABLE, "COSIGN_PASSWORD")

#: The user GitLab's job token logs in to the registry as.
JOB_TOKEN_USER = "gitlab-ci-token"  # noqa: S105 - a user name

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
_LABEL = "org.opencontainers.image."


def _runner(environ: Mapping[str, str]) -> str | None:
    """The runner's name and version, for SLSA's builder.version: the id is the project's."""
    found = [get(environ, name) for name in ("CI_RUNNER_DESCRIPTION", "CI_RUNNER_VERSION")]
    return " ".join(v for v in found if v) or None


def _with_scheme(uri: str) -> str:
    """GitLab's `ci_config_ref_uri` claim has no scheme; Fulcio's certificate SAN has https."""
    return uri if _SCHEME_RE.match(uri) else f"https://{uri}"


class GitLabProvider:
    """GitLab CI, recognised by `GITLAB_CI=true`."""

    name = "gitlab"

    def matches(self, environ: Mapping[str, str]) -> bool:
        return GITLAB.detected(environ)

    def context(self, environ: Mapping[str, str]) -> CIContext:
        annotations = tuple(
            validate_annotation(Annotation(key=key, value=GITLAB.require(environ, var), source=var))
            for key, var in ANNOTATION_VARIABLES
        )
        project_url = GITLAB.require(environ, "CI_PROJECT_URL")
        sha = GITLAB.require(environ, "CI_COMMIT_SHA")
        commit_tag = get(environ, "CI_COMMIT_TAG")

        short_sha = get(environ, "CI_COMMIT_SHORT_SHA")
        short_source = "CI_COMMIT_SHORT_SHA"
        if short_sha is None:
            short_sha, short_source = sha[:8], "CI_COMMIT_SHA"
        tags = [validate_tag(short_sha, short_source)]
        if commit_tag is not None:
            tags.append(sanitize_tag(commit_tag, "CI_COMMIT_TAG"))

        default_branch = get(environ, "CI_DEFAULT_BRANCH")
        refs = RefFacts(
            short_sha=short_sha,
            sha_source=short_source,
            # A tag pipeline's CI_COMMIT_REF_NAME is the tag too, but CI_COMMIT_TAG says it is one.
            ref_name=commit_tag or GITLAB.require(environ, "CI_COMMIT_REF_NAME"),
            ref_source="CI_COMMIT_TAG" if commit_tag is not None else "CI_COMMIT_REF_NAME",
            is_tag=commit_tag is not None,
            default_branch=default_branch,
            default_branch_source="CI_DEFAULT_BRANCH"
            if default_branch is not None
            else "CI_DEFAULT_BRANCH is not set",
            # Set in merge request pipelines (merged results and merge trains too), whose
            # CI_COMMIT_REF_NAME is the source branch, maybe a fork's "main".
            is_merge_request=get(environ, "CI_MERGE_REQUEST_IID") is not None,
        )

        image = get(environ, "CI_REGISTRY_IMAGE")
        default_repository = (
            validate_repository(image, "CI_REGISTRY_IMAGE") if image is not None else None
        )

        id_token = get(environ, ID_TOKEN_VARIABLE)
        claims = decode_claims(id_token)
        config_ref_uri = claim(claims, "ci_config_ref_uri")
        config_path = get(environ, "CI_CONFIG_PATH") or DEFAULT_CONFIG_PATH
        if commit_tag is not None:
            ref = f"refs/tags/{commit_tag}"
        else:
            ref = f"refs/heads/{GITLAB.require(environ, 'CI_COMMIT_REF_NAME')}"
        if config_ref_uri is not None:
            identity = _with_scheme(config_ref_uri)
        else:
            identity = f"{project_url}//{config_path}@{ref}"
        issuer = claim(claims, "iss") or GITLAB.require(environ, "CI_SERVER_URL")

        password_source = next((n for n in PASSWORD_VARIABLES if get(environ, n)), None)
        password = get(environ, password_source) if password_source else None
        user = get(environ, "CI_REGISTRY_USER")
        if user is None and password_source == JOB_TOKEN_VARIABLE:
            user = JOB_TOKEN_USER

        labels = {
            f"{_LABEL}source": project_url,
            f"{_LABEL}revision": sha,
        }
        labels[f"{_LABEL}version"] = commit_tag or short_sha
        title = (
            get(environ, "CI_PROJECT_NAME")
            or GITLAB.require(environ, "CI_PROJECT_PATH").rsplit("/", 1)[-1]
        )
        labels[f"{_LABEL}title"] = title
        labels[f"{_LABEL}url"] = project_url

        return CIContext(
            provider=self.name,
            detected="GitLab CI (GITLAB_CI=true)",
            own_annotations=OWN_ANNOTATIONS,
            run_annotations=RUN_ANNOTATIONS,
            annotations=annotations,
            labels=MappingProxyType(labels),
            default_repository=default_repository,
            default_tags=tuple(dict.fromkeys(tags)),
            identity=identity,
            issuer=issuer,
            registry=get(environ, "CI_REGISTRY"),
            registry_user=user,
            registry_password=password,
            registry_password_source=password_source,
            id_token=id_token,
            id_token_source=ID_TOKEN_VARIABLE if id_token is not None else None,
            secrets=secrets(environ, SECRET_VARIABLES),
            keyless_by_default=True,
            keyless_hint=f"add to the job: {GITLAB_ID_TOKEN_HINT}",
            commit_time=iso_time(environ, "CI_COMMIT_TIMESTAMP"),
            commit_time_source="CI_COMMIT_TIMESTAMP",
            builder_id=identity.rsplit("@", 1)[0],  # the CI configuration, not one ref of it
            invocation_id=get(environ, "CI_JOB_URL"),
            source_ref=ref,
            config_path=config_path,
            runner=_runner(environ),
            refs=refs,
        )
