"""GitLab CI: annotations, defaults and the expected signer, from predefined variables."""

from __future__ import annotations

import base64
import json

import pytest

from provenance_tasks.ci.base import CIContext
from provenance_tasks.ci.gitlab import GITLAB_ID_TOKEN_HINT, GitLabProvider
from provenance_tasks.errors import InputError
from tests.unit.gitlab_env import GITLAB_ENV, SHA

JOB_TOKEN = "glcbt-64_JOBTOKENxyzzy"
REGISTRY_PASSWORD = "REGPASSWORDplugh"
COSIGN_PASSWORD = "COSIGNPASSWORDfrotz"

# The shared branch pipeline, with what these tests need of their own: a user name that CSV and
# Unicode must survive, a registry with a port, and a variable GitLab leaves empty.
BRANCH_ENV: dict[str, str] = {
    **GITLAB_ENV,
    "GITLAB_USER_NAME": "Doe, Jo \u00e9",
    "CI_REGISTRY": "registry.example.com:5050",
    "CI_REGISTRY_IMAGE": "registry.example.com:5050/group/proj",
    "CI_JOB_TOKEN": JOB_TOKEN,
    "CI_COMMIT_TAG": "",  # GitLab leaves some variables empty rather than unset
}

REQUIRED = [
    "GITLAB_USER_NAME",
    "CI_PIPELINE_ID",
    "CI_PIPELINE_URL",
    "CI_JOB_ID",
    "CI_JOB_URL",
    "CI_COMMIT_SHA",
    "CI_COMMIT_REF_NAME",
    "CI_PROJECT_PATH",
    "CI_PROJECT_URL",
    "CI_SERVER_URL",
]


def jwt(claims: dict[str, object]) -> str:
    def seg(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS256', 'typ': 'JWT'})}.{seg(claims)}.c2lnbmF0dXJl"


def context(**changes: str | None) -> CIContext:
    env = dict(BRANCH_ENV)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return GitLabProvider().context(env)


def test_matches_only_on_gitlab_ci_true() -> None:
    provider = GitLabProvider()
    assert provider.name == "gitlab"
    assert provider.matches({"GITLAB_CI": "true"})
    assert not provider.matches({"GITLAB_CI": "false"})
    assert not provider.matches({"GITLAB_CI": "1"})
    assert not provider.matches({"CI": "true"})
    assert not provider.matches({})


def test_branch_pipeline_annotations_in_order() -> None:
    ctx = GitLabProvider().context(BRANCH_ENV)
    assert ctx.provider == "gitlab"
    assert [(a.key, a.value, a.source) for a in ctx.annotations] == [
        ("com.gitlab.ci.user.name", "Doe, Jo \u00e9", "GITLAB_USER_NAME"),
        ("com.gitlab.ci.pipeline.id", "1001", "CI_PIPELINE_ID"),
        (
            "com.gitlab.ci.pipeline.url",
            "https://gitlab.example.com/group/proj/-/pipelines/1001",
            "CI_PIPELINE_URL",
        ),
        ("com.gitlab.ci.job.id", "2002", "CI_JOB_ID"),
        (
            "com.gitlab.ci.job.url",
            "https://gitlab.example.com/group/proj/-/jobs/2002",
            "CI_JOB_URL",
        ),
        ("com.gitlab.ci.commit.sha", SHA, "CI_COMMIT_SHA"),
        ("com.gitlab.ci.commit.ref.name", "main", "CI_COMMIT_REF_NAME"),
        ("com.gitlab.ci.project.path", "group/proj", "CI_PROJECT_PATH"),
        (
            "org.opencontainers.image.source",
            "https://gitlab.example.com/group/proj",
            "CI_PROJECT_URL",
        ),
        ("org.opencontainers.image.revision", SHA, "CI_COMMIT_SHA"),
    ]


def test_branch_pipeline_defaults_and_signer() -> None:
    ctx = GitLabProvider().context(BRANCH_ENV)
    assert ctx.default_repository == "registry.example.com:5050/group/proj"
    assert ctx.default_tags == (SHA[:8],)
    assert ctx.identity == "https://gitlab.example.com/group/proj//.gitlab-ci.yml@refs/heads/main"
    assert ctx.issuer == "https://gitlab.example.com"
    assert ctx.registry == "registry.example.com:5050"
    assert ctx.registry_user == "gitlab-ci-token"
    assert ctx.registry_password == JOB_TOKEN
    assert ctx.registry_password_source == "CI_JOB_TOKEN"
    assert ctx.id_token is None
    assert ctx.id_token_source is None
    assert ctx.secrets == (JOB_TOKEN,)


def test_tag_pipeline_identity_uses_refs_tags_and_tag_is_a_default_tag() -> None:
    ctx = context(CI_COMMIT_TAG="v1.2.3", CI_COMMIT_REF_NAME="v1.2.3")
    assert ctx.identity == "https://gitlab.example.com/group/proj//.gitlab-ci.yml@refs/tags/v1.2.3"
    assert ctx.default_tags == (SHA[:8], "v1.2.3")
    assert ctx.labels["org.opencontainers.image.version"] == "v1.2.3"


def test_git_tag_that_is_no_image_tag_is_made_one() -> None:
    ctx = context(CI_COMMIT_TAG="v1.0+build/7")
    assert ctx.default_tags == (SHA[:8], "v1.0-build-7")
    # the identity names the git ref itself
    assert ctx.identity is not None
    assert ctx.identity.endswith("@refs/tags/v1.0+build/7")


def test_custom_config_path() -> None:
    ctx = context(CI_CONFIG_PATH="ci/build.yml")
    assert ctx.identity == "https://gitlab.example.com/group/proj//ci/build.yml@refs/heads/main"


def test_token_claim_wins_over_variables() -> None:
    token = jwt(
        {
            "iss": "https://gitlab.other.example",
            "ci_config_ref_uri": "gitlab.other.example/group/ci-templates//build.yml@refs/heads/x",
        }
    )
    ctx = context(SIGSTORE_ID_TOKEN=token, CI_CONFIG_PATH="ci/build.yml")
    assert ctx.identity == (
        "https://gitlab.other.example/group/ci-templates//build.yml@refs/heads/x"
    )
    assert ctx.issuer == "https://gitlab.other.example"
    assert ctx.id_token == token
    assert ctx.id_token_source == "SIGSTORE_ID_TOKEN"
    assert token in ctx.secrets


def test_token_claim_with_a_scheme_is_kept() -> None:
    token = jwt({"ci_config_ref_uri": "https://gl.example/g/p//.gitlab-ci.yml@refs/heads/main"})
    ctx = context(SIGSTORE_ID_TOKEN=token)
    assert ctx.identity == "https://gl.example/g/p//.gitlab-ci.yml@refs/heads/main"
    assert ctx.issuer == "https://gitlab.example.com"


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b", "a.!!!.c", "a.bm90IGpzb24.c"])
def test_malformed_token_falls_back_to_variables(token: str) -> None:
    ctx = context(SIGSTORE_ID_TOKEN=token)
    assert ctx.identity == "https://gitlab.example.com/group/proj//.gitlab-ci.yml@refs/heads/main"
    assert ctx.id_token == token
    assert token in ctx.secrets


@pytest.mark.parametrize("name", REQUIRED)
@pytest.mark.parametrize("how", ["unset", "empty"])
def test_missing_required_variable_is_named(name: str, how: str) -> None:
    with pytest.raises(InputError) as err:
        context(**{name: None if how == "unset" else ""})
    assert name in err.value.message
    assert "GitLab predefined variable" in err.value.message
    assert err.value.hint is not None and f"export {name}=" in err.value.hint
    text = f"{err.value.message} {err.value.hint}"
    for secret in (JOB_TOKEN,):
        assert secret not in text


def test_server_url_not_needed_when_token_names_the_issuer() -> None:
    token = jwt({"iss": "https://gitlab.example.com"})
    ctx = context(CI_SERVER_URL=None, SIGSTORE_ID_TOKEN=token)
    assert ctx.issuer == "https://gitlab.example.com"


def test_registry_password_prefers_ci_registry_password() -> None:
    ctx = context(CI_REGISTRY_PASSWORD=REGISTRY_PASSWORD, COSIGN_PASSWORD=COSIGN_PASSWORD)
    assert ctx.registry_password == REGISTRY_PASSWORD
    assert ctx.registry_password_source == "CI_REGISTRY_PASSWORD"
    assert set(ctx.secrets) == {JOB_TOKEN, REGISTRY_PASSWORD, COSIGN_PASSWORD}


def test_job_token_user_defaults_when_registry_user_unset() -> None:
    ctx = context(CI_REGISTRY_USER=None)
    assert ctx.registry_user == "gitlab-ci-token"


def test_no_password_at_all() -> None:
    ctx = context(CI_JOB_TOKEN=None)
    assert ctx.registry_password is None
    assert ctx.registry_password_source is None
    assert ctx.secrets == ()


def test_no_registry_means_no_default_repository() -> None:
    ctx = context(CI_REGISTRY=None, CI_REGISTRY_IMAGE=None)
    assert ctx.registry is None
    assert ctx.default_repository is None


def test_invalid_registry_image_is_named() -> None:
    with pytest.raises(InputError, match="CI_REGISTRY_IMAGE"):
        context(CI_REGISTRY_IMAGE="registry.example.com/Group/Proj")


def test_short_sha_falls_back_to_commit_sha() -> None:
    ctx = context(CI_COMMIT_SHORT_SHA=None)
    assert ctx.default_tags == (SHA[:8],)


def test_labels() -> None:
    # `created` is no CI label: it is the commit's time (or SOURCE_DATE_EPOCH), set at the build.
    ctx = context(CI_PIPELINE_CREATED_AT="2024-05-01T10:00:00Z")
    assert dict(ctx.labels) == {
        "org.opencontainers.image.source": "https://gitlab.example.com/group/proj",
        "org.opencontainers.image.revision": SHA,
        "org.opencontainers.image.version": SHA[:8],
        "org.opencontainers.image.title": "proj",
        "org.opencontainers.image.url": "https://gitlab.example.com/group/proj",
    }


@pytest.mark.parametrize(
    ("timestamp", "epoch"),
    [
        ("2024-05-01T10:00:00Z", 1714557600),
        ("2024-05-01T12:00:00+02:00", 1714557600),
        ("2024-05-01T10:00:00", None),  # no zone: hours off, so git is asked instead
        ("yesterday", None),
        (None, None),
    ],
)
def test_the_commit_time_is_ci_commit_timestamp(timestamp: str | None, epoch: int | None) -> None:
    ctx = context(CI_COMMIT_TIMESTAMP=timestamp, CI_PIPELINE_CREATED_AT="2030-01-01T00:00:00Z")
    assert ctx.commit_time == epoch


def test_control_character_in_a_variable_names_it() -> None:
    with pytest.raises(InputError) as err:
        context(GITLAB_USER_NAME="Jo\x1b[31m")
    assert "GITLAB_USER_NAME" in err.value.message
    assert "U+001B ESC" in err.value.message


def test_repr_hides_secrets() -> None:
    token = jwt({"ci_config_ref_uri": "gitlab.example.com/g/p//.gitlab-ci.yml@refs/heads/main"})
    ctx = context(
        SIGSTORE_ID_TOKEN=token,
        CI_REGISTRY_PASSWORD=REGISTRY_PASSWORD,
        COSIGN_PASSWORD=COSIGN_PASSWORD,
    )
    text = repr(ctx)
    for secret in (JOB_TOKEN, REGISTRY_PASSWORD, COSIGN_PASSWORD, token):
        assert secret not in text


def test_id_token_hint() -> None:
    assert GITLAB_ID_TOKEN_HINT == "id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore"


def test_the_builder_is_the_projects_ci_configuration_and_the_invocation_the_job() -> None:
    ctx = context(
        CI_CONFIG_PATH="ci/build.yml", CI_RUNNER_DESCRIPTION="shared-7", CI_RUNNER_VERSION="17.5.0"
    )
    assert ctx.builder_id == "https://gitlab.example.com/group/proj//ci/build.yml"
    assert ctx.config_path == "ci/build.yml" and ctx.runner == "shared-7 17.5.0"
    assert ctx.invocation_id == BRANCH_ENV["CI_JOB_URL"]
    assert ctx.source_ref == f"refs/heads/{BRANCH_ENV['CI_COMMIT_REF_NAME']}"
