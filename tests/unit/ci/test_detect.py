"""Which provider a run gets, the ID token claims, and that no secret leaks through an error."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from provenance_tasks.ci import detect, select_provider
from provenance_tasks.ci.oidc import claim, decode_claims
from provenance_tasks.errors import InputError

SECRETS = {
    "CI_JOB_TOKEN": "SECRET-job-token-1",
    "CI_REGISTRY_PASSWORD": "SECRET-registry-password-2",
    "COSIGN_PASSWORD": "SECRET-cosign-password-3",
    "GITHUB_TOKEN": "SECRET-github-token-4",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "SECRET-request-token-5",
}


def jwt(claims: object) -> str:
    def seg(data: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS256'})}.{seg(claims)}.c2ln"


GITLAB: dict[str, str] = {
    "GITLAB_CI": "true",
    "GITLAB_USER_NAME": "Jo",
    "CI_PIPELINE_ID": "1",
    "CI_PIPELINE_URL": "https://gl.example/g/p/-/pipelines/1",
    "CI_JOB_ID": "2",
    "CI_JOB_URL": "https://gl.example/g/p/-/jobs/2",
    "CI_COMMIT_SHA": "a" * 40,
    "CI_COMMIT_SHORT_SHA": "a" * 8,
    "CI_COMMIT_REF_NAME": "main",
    "CI_PROJECT_PATH": "g/p",
    "CI_PROJECT_URL": "https://gl.example/g/p",
    "CI_PROJECT_NAME": "p",
    "CI_SERVER_URL": "https://gl.example",
    "CI_REGISTRY_IMAGE": "registry.gl.example/g/p",
}

GITHUB: dict[str, str] = {
    "GITHUB_ACTIONS": "true",
    "GITHUB_RUN_ID": "3",
    "GITHUB_RUN_ATTEMPT": "1",
    "GITHUB_SERVER_URL": "https://github.com",
    "GITHUB_REPOSITORY": "o/r",
    "GITHUB_WORKFLOW_REF": "o/r/.github/workflows/ci.yml@refs/heads/main",
    "GITHUB_SHA": "b" * 40,
    "GITHUB_REF": "refs/heads/main",
    "GITHUB_ACTOR": "octocat",
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder outside any git repository, for the local provider."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    path = tmp_path / "proj"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("environ", "provider"),
    [
        ({}, "local"),
        ({"CI": "true"}, "unknown-ci"),
        ({"CI": "1"}, "unknown-ci"),
        ({"CI": "true", "GITLAB_CI": "false"}, "unknown-ci"),
        ({"CI": "false"}, "local"),
        ({"GITLAB_CI": "1"}, "local"),
        ({"GITHUB_ACTIONS": "TRUE"}, "local"),
        ({"GITLAB_CI": "true"}, "gitlab"),
        ({"GITHUB_ACTIONS": "true"}, "github"),
        ({"GITLAB_CI": "true", "GITHUB_ACTIONS": "true"}, "gitlab"),
    ],
)
def test_select_provider(environ: dict[str, str], provider: str, folder: Path) -> None:
    assert select_provider(environ, cwd=folder).name == provider


def test_ci_true_alone_is_an_unknown_ci_that_guesses_nothing(folder: Path) -> None:
    ctx = detect({"CI": "true", **GITHUB, "GITHUB_ACTIONS": ""}, cwd=folder)
    assert ctx.provider == "unknown-ci"
    assert ctx.default_repository is None  # never localhost:5000/<folder> in a CI
    assert not ctx.local_keys  # never a throwaway key pair in a CI
    assert ctx.identity is None
    assert "CI=true" in ctx.detected and "--image" in ctx.image_hint and "--key" in ctx.key_hint


def test_gitlab_ci_local_is_named_with_what_its_users_pass(folder: Path) -> None:
    ctx = detect({"CI": "true", "GITLAB_CI": "false"}, cwd=folder)
    assert "gitlab-ci-local" in ctx.detected and "--variable GITLAB_CI=true" in ctx.image_hint


def test_a_laptop_keeps_its_local_defaults(folder: Path) -> None:
    ctx = detect({}, cwd=folder)
    assert ctx.provider == "local" and ctx.local_keys
    assert ctx.default_repository == "localhost:5000/proj"


def test_gitlab_detected(folder: Path) -> None:
    ctx = detect({**GITLAB, "CI": "true"}, cwd=folder)
    assert ctx.provider == "gitlab"
    assert ctx.identity == "https://gl.example/g/p//.gitlab-ci.yml@refs/heads/main"


def test_gitlab_tag_pipeline_identity_uses_refs_tags(folder: Path) -> None:
    ctx = detect({**GITLAB, "CI_COMMIT_TAG": "v1"}, cwd=folder)
    assert ctx.identity == "https://gl.example/g/p//.gitlab-ci.yml@refs/tags/v1"


def test_gitlab_custom_config_path(folder: Path) -> None:
    ctx = detect({**GITLAB, "CI_CONFIG_PATH": "build/ci.yml"}, cwd=folder)
    assert ctx.identity == "https://gl.example/g/p//build/ci.yml@refs/heads/main"


def test_gitlab_token_claim_wins_over_variables(folder: Path) -> None:
    token = jwt(
        {"ci_config_ref_uri": "gl.example/g/other//x.yml@refs/heads/rel", "iss": "https://i"}
    )
    ctx = detect({**GITLAB, "SIGSTORE_ID_TOKEN": token, "CI_CONFIG_PATH": "y.yml"}, cwd=folder)
    assert ctx.identity == "https://gl.example/g/other//x.yml@refs/heads/rel"
    assert ctx.issuer == "https://i"


def test_github_detected(folder: Path) -> None:
    ctx = detect(GITHUB, cwd=folder)
    assert ctx.provider == "github"
    assert ctx.identity == "https://github.com/o/r/.github/workflows/ci.yml@refs/heads/main"


def _required(environ: dict[str, str]) -> list[str]:
    return [k for k in environ if k not in ("GITLAB_CI", "GITHUB_ACTIONS", "CI_COMMIT_SHORT_SHA")]


CASES = [(GITLAB, name) for name in _required(GITLAB) if name not in ("CI_REGISTRY_IMAGE",)]
CASES += [(GITHUB, name) for name in _required(GITHUB)]


@pytest.mark.parametrize(
    ("base", "missing"), CASES, ids=[f"{'gl' if b is GITLAB else 'gh'}-{n}" for b, n in CASES]
)
def test_missing_variable_is_named_and_no_secret_leaks(
    base: dict[str, str], missing: str, folder: Path
) -> None:
    token = jwt({"sub": "SECRET-token-claims"})
    environ = {**base, **SECRETS, "SIGSTORE_ID_TOKEN": token}
    if missing == "CI_PROJECT_NAME":
        del environ[missing]  # optional: the title falls back to the project path
        assert detect(environ, cwd=folder).labels["org.opencontainers.image.title"] == "p"
        return
    del environ[missing]
    with pytest.raises(InputError) as err:
        detect(environ, cwd=folder)
    assert missing in err.value.message
    text = " ".join([err.value.diagnostics(), str(err.value), repr(err.value)])
    for secret in [*SECRETS.values(), token]:
        assert secret not in text
    assert "SECRET" not in text


@pytest.mark.parametrize("base", [GITLAB, GITHUB, {}], ids=["gitlab", "github", "local"])
def test_repr_of_context_holds_no_secret(base: dict[str, str], folder: Path) -> None:
    token = jwt({"sub": "SECRET-token-claims"})
    ctx = detect({**base, **SECRETS, "SIGSTORE_ID_TOKEN": token}, cwd=folder)
    text = repr(ctx)
    assert "SECRET" not in text
    assert token not in text
    assert token in ctx.secrets
    assert SECRETS["COSIGN_PASSWORD"] in ctx.secrets


def test_bad_token_yields_no_error_and_no_text(folder: Path) -> None:
    bad = "SECRET.not-base64!.x"
    ctx = detect({**GITLAB, "SIGSTORE_ID_TOKEN": bad}, cwd=folder)
    assert ctx.identity == "https://gl.example/g/p//.gitlab-ci.yml@refs/heads/main"
    assert bad in ctx.secrets


# --- oidc -------------------------------------------------------------------------------------


def test_decode_claims() -> None:
    claims = decode_claims(jwt({"iss": "https://x", "n": 1, "u": "\u00e9"}))
    assert claims == {"iss": "https://x", "n": 1, "u": "\u00e9"}
    assert claim(claims, "iss") == "https://x"
    assert claim(claims, "n") is None  # not text
    assert claim(claims, "missing") is None
    assert claim(None, "iss") is None


def test_decode_claims_needs_no_padding_and_takes_any_length() -> None:
    for n in range(6):
        assert decode_claims(jwt({"k": "x" * n})) == {"k": "x" * n}


@pytest.mark.parametrize(
    "token",
    [
        None,
        "",
        "abc",
        "a.b",
        "a.b.c.d.e",  # JWE
        "a..c",
        "a.!!!.c",
        "a.bm90IGpzb24.c",  # "not json"
        "a." + base64.urlsafe_b64encode(b"\xff\xfe").decode().rstrip("=") + ".c",
        jwt([1, 2]),  # JSON but not an object
        jwt("text"),
        "a." + base64.urlsafe_b64encode(b"[" * 100000).decode().rstrip("=") + ".c",
    ],
)
def test_malformed_tokens_give_none(token: str | None) -> None:
    assert decode_claims(token) is None
