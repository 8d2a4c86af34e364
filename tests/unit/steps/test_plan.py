"""The plan refuses bad input up front, before anything is built, pushed or signed.

Each test makes a real Run from resolved settings, a minimal environment (a local run unless
GitLab's variables are given) and a temporary folder that is not a git repository.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.models import (
    CertificateSigning,
    IdentityToken,
    ImageRef,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
)
from provenance_tasks.settings import resolve
from provenance_tasks.steps import build_inputs, plan
from provenance_tasks.steps.run import Run
from tests.unit.gitlab_env import GITLAB_ENV, SHA

DIGEST_HEX = "b" * 64


def jwt(claims: dict[str, object]) -> str:
    def seg(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS256', 'typ': 'JWT'})}.{seg(claims)}.c2lnbmF0dXJl"


@pytest.fixture(autouse=True)
def _not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local provider asks git about the folder: keep it from finding one above tmp_path."""
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for name in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


def make_run(tmp_path: Path, environ: dict[str, str] | None = None, **flags: object) -> Run:
    env = {"HOME": str(tmp_path), "PATH": "/usr/local/bin:/usr/bin:/bin", **(environ or {})}
    return Run.start(resolve(None, flags), environ=env, cwd=tmp_path)


def with_dockerfile(tmp_path: Path) -> Path:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    return tmp_path


# --- build args --------------------------------------------------------------------------------


def test_build_arg_equal_to_the_gitlab_job_token_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, GITLAB_ENV, build_args=[f"X={GITLAB_ENV['CI_JOB_TOKEN']}"])
    with pytest.raises(InputError, match="X carries a secret"):
        build_inputs.build_args(run)


@pytest.mark.parametrize(
    "flags", [{"key": "cosign.key"}, {"certificate": "signer.pem"}], ids=["key", "certificate"]
)
def test_keyless_with_a_key_or_certificate_is_refused_as_both(
    tmp_path: Path, flags: dict[str, str]
) -> None:
    run = make_run(tmp_path, mode="keyless", **flags)
    with pytest.raises(InputError, match="both"):
        plan.signing_mode(run)


@pytest.mark.parametrize(
    ("environ", "flags", "mode"),
    [
        ({}, {}, "key"),
        (GITLAB_ENV, {}, "keyless"),
        (GITLAB_ENV, {"key": "awskms://alias/x"}, "key"),
        ({}, {"certificate": "c.pem", "key": "k.key"}, "certificate"),
        (GITLAB_ENV, {"mode": "key"}, "key"),
    ],
    ids=["local", "gitlab", "gitlab-with-key", "certificate", "explicit"],
)
def test_auto_mode_picks_the_signing_mode_from_inputs_and_ci(
    tmp_path: Path, environ: dict[str, str], flags: dict[str, str], mode: str
) -> None:
    assert plan.signing_mode(make_run(tmp_path, environ, **flags)) == mode


@pytest.mark.parametrize("key", ["foo://k", "s3://bucket/key", "file://cosign.key"])
def test_unknown_kms_scheme_is_refused_naming_the_scheme(tmp_path: Path, key: str) -> None:
    run = make_run(tmp_path, key=key)
    with pytest.raises(InputError) as caught:
        plan.signing_material(run, "key")
    scheme = key.split("://")[0] + "://"
    assert f"unknown KMS scheme {scheme}" in caught.value.message
    assert caught.value.hint is not None and "awskms://" in caught.value.hint


@pytest.mark.parametrize(
    "key", ["awskms://alias/x", "gcpkms://projects/p/k", "hashivault://k", "gitlab://123"]
)
def test_kms_key_is_passed_through_unchanged(tmp_path: Path, key: str) -> None:
    assert plan.signing_material(make_run(tmp_path, key=key), "key") == KeySigning(key)


def test_readable_key_file_becomes_an_absolute_path(tmp_path: Path) -> None:
    (tmp_path / "cosign.key").write_text("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    material = plan.signing_material(make_run(tmp_path, key="cosign.key"), "key")
    assert material == KeySigning(str((tmp_path / "cosign.key").resolve()))


@pytest.mark.parametrize("make", ["missing", "folder"])
def test_key_that_is_not_a_readable_file_is_refused(tmp_path: Path, make: str) -> None:
    if make == "folder":
        (tmp_path / "cosign.key").mkdir()
    run = make_run(tmp_path, key="cosign.key")
    with pytest.raises(InputError) as caught:
        plan.signing_material(run, "key")
    assert f"cannot read signing key {(tmp_path / 'cosign.key').resolve()}" in str(caught.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_key_file_without_read_permission_is_refused(tmp_path: Path) -> None:
    key = tmp_path / "cosign.key"
    key.write_text("secret key\n")
    key.chmod(0)
    try:
        with pytest.raises(InputError, match="cannot read signing key"):
            plan.signing_material(make_run(tmp_path, key="cosign.key"), "key")
    finally:
        key.chmod(0o600)


def test_env_key_reference_needs_the_variable_set(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="the variable is not set"):
        plan.signing_material(make_run(tmp_path, key="env://SIGNING_KEY"), "key")
    run = make_run(tmp_path, {"SIGNING_KEY": "-----BEGIN..."}, key="env://SIGNING_KEY")
    assert plan.signing_material(run, "key") == KeySigning("env://SIGNING_KEY")


def test_certificate_mode_needs_key_certificate_and_chain(tmp_path: Path) -> None:
    for name in ("k.key", "c.pem", "chain.pem"):
        (tmp_path / name).write_text("x\n")
    run = make_run(tmp_path, key="k.key", certificate="c.pem")
    with pytest.raises(InputError, match="certificate mode needs"):
        plan.signing_material(run, "certificate")
    run = make_run(tmp_path, key="k.key", certificate="c.pem", certificate_chain="chain.pem")
    material = plan.signing_material(run, "certificate")
    assert material == CertificateSigning(
        str((tmp_path / "k.key").resolve()),
        (tmp_path / "c.pem").resolve(),
        (tmp_path / "chain.pem").resolve(),
    )


def test_keyless_in_gitlab_without_an_id_token_points_at_id_tokens(tmp_path: Path) -> None:
    run = make_run(tmp_path, GITLAB_ENV)
    with pytest.raises(InputError) as caught:
        plan.signing_material(run, plan.signing_mode(run))
    assert "OIDC token" in caught.value.message
    assert caught.value.hint is not None and "id_tokens" in caught.value.hint


def good_claims(**changes: object) -> dict[str, object]:
    claims: dict[str, object] = {
        "iss": "https://gitlab.example.com",
        "ci_config_ref_uri": "x",
        "aud": "sigstore",
        "exp": int(time.time()) + 300,
    }
    claims.update(changes)
    return claims


def test_keyless_in_gitlab_with_an_id_token_signs_keyless(tmp_path: Path) -> None:
    token = jwt(good_claims())
    run = make_run(tmp_path, {**GITLAB_ENV, "SIGSTORE_ID_TOKEN": token})
    material = plan.signing_material(run, "keyless")
    assert material == KeylessSigning(IdentityToken(token, "SIGSTORE_ID_TOKEN"))
    assert token in run.redactor.secrets


@pytest.mark.parametrize(
    ("claims", "problem"),
    [
        (good_claims(exp=int(time.time()) - 60), "expired"),
        (good_claims(aud="gitlab"), "audience gitlab, not 'sigstore'"),
        (good_claims(aud=["a", "b"]), "audience a, b, not 'sigstore'"),
        ({k: v for k, v in good_claims().items() if k != "exp"}, "no expiry"),
    ],
    ids=["expired", "wrong-audience", "audiences", "no-expiry"],
)
def test_keyless_with_a_token_fulcio_would_refuse_is_bad_input(
    tmp_path: Path, claims: dict[str, object], problem: str
) -> None:
    token = jwt(claims)
    run = make_run(tmp_path, {**GITLAB_ENV, "SIGSTORE_ID_TOKEN": token})
    with pytest.raises(InputError) as caught:
        plan.signing_material(run, "keyless")
    assert problem in caught.value.message
    assert "SIGSTORE_ID_TOKEN" in caught.value.message
    assert token not in caught.value.diagnostics()
    assert caught.value.hint is not None and "aud: sigstore" in caught.value.hint


def test_keyless_with_a_token_that_is_not_a_jwt_is_bad_input(tmp_path: Path) -> None:
    run = make_run(tmp_path, {**GITLAB_ENV, "SIGSTORE_ID_TOKEN": "not-a-token-at-all"})
    with pytest.raises(InputError, match="is not a JWT") as caught:
        plan.signing_material(run, "keyless")
    assert "not-a-token-at-all" not in caught.value.diagnostics()


def test_keyless_on_github_asks_the_runner_endpoint_later(tmp_path: Path) -> None:
    env = {
        "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:1/token?x=1",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "request-token-secret",
    }
    material = plan.signing_material(make_run(tmp_path, env), "keyless")
    assert isinstance(material, KeylessSigning)
    assert material.token.from_endpoint
    assert material.token.request_url == "http://127.0.0.1:1/token?x=1"
    assert "request-token-secret" not in repr(material)


def test_keyless_locally_without_a_token_suggests_a_key(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        plan.signing_material(make_run(tmp_path), "keyless")
    assert caught.value.hint is not None and "--key" in caught.value.hint


def test_keyless_without_tlog_is_refused(tmp_path: Path) -> None:
    token = jwt(good_claims())
    run = make_run(tmp_path, {**GITLAB_ENV, "SIGSTORE_ID_TOKEN": token}, tlog=False)
    with pytest.raises(InputError, match="--no-tlog"):
        plan.signing_material(run, "keyless")


def test_key_mode_in_ci_without_a_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="key mode needs a key"):
        plan.signing_material(make_run(tmp_path, GITLAB_ENV), "key")


# --- target: image, tags, annotations ------------------------------------------------------------


def test_target_uses_the_flags(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        image="localhost:5000/app",
        tags=["v1", "v1", "latest"],
        annotations=["com.example.team=platform"],
    )
    target = plan.target(run)
    assert target.repository == "localhost:5000/app"
    assert target.tags == ("v1", "latest")
    assert target.annotations_for("v1")["com.example.team"] == "platform"
    assert target.annotations_for("v1")["tag"] == "v1"
    assert "tag" not in target.annotations_for(None)


def test_uppercase_image_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, image="Localhost:5000/App")
    with pytest.raises(InputError) as caught:
        plan.target(run)
    assert "--image" in caught.value.message
    assert "uppercase" in caught.value.message
    assert caught.value.hint is not None and "lowercase" in caught.value.hint


@pytest.mark.parametrize("tag", ["sha256:" + DIGEST_HEX, DIGEST_HEX])
def test_tag_that_looks_like_a_digest_is_refused(tmp_path: Path, tag: str) -> None:
    run = make_run(tmp_path, image="localhost:5000/app", tags=[tag])
    with pytest.raises(InputError) as caught:
        plan.target(run)
    assert "is a digest" in caught.value.message
    assert "--tag" in caught.value.message


def test_annotation_key_with_a_space_is_refused(tmp_path: Path) -> None:
    run = make_run(
        tmp_path, image="localhost:5000/app", tags=["v1"], annotations=["com.example team=platform"]
    )
    with pytest.raises(InputError) as caught:
        plan.target(run)
    assert "'com.example team'" in caught.value.message
    assert "is not valid" in caught.value.message


def test_annotation_value_with_a_newline_is_refused_naming_the_key(tmp_path: Path) -> None:
    run = make_run(
        tmp_path,
        image="localhost:5000/app",
        tags=["v1"],
        annotations=["com.example.note=line one\nline two"],
    )
    with pytest.raises(InputError) as caught:
        plan.target(run)
    assert "'com.example.note'" in caught.value.message
    assert "a newline" in caught.value.message
    assert "line two" not in caught.value.message  # the value is not repeated


def test_annotation_setting_the_reserved_tag_key_is_refused(tmp_path: Path) -> None:
    run = make_run(tmp_path, image="localhost:5000/app", tags=["v1"], annotations=["tag=v2"])
    with pytest.raises(InputError, match="'tag'"):
        plan.target(run)


def test_target_defaults_come_from_gitlab(tmp_path: Path) -> None:
    target = plan.target(make_run(tmp_path, GITLAB_ENV))
    assert target.repository == "registry.example.com/group/proj"
    assert target.tags == (SHA[:8],)


def test_local_target_defaults_to_the_local_registry_and_latest(tmp_path: Path) -> None:
    folder = tmp_path / "My App"
    folder.mkdir()
    target = plan.target(make_run(folder))
    assert target.repository == "localhost:5000/my-app"
    assert target.tags == ("latest",)


# --- resolve: one plan, computed once ------------------------------------------------------------


def resolved(run: Run, steps: tuple[str, ...]) -> plan.Plan:
    from provenance_tasks.steps.run import Tools

    return plan.resolve(run, Tools(run), steps)


@pytest.fixture
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    """resolve reads settings and files; a tool started now would be a probe out of place."""
    import subprocess

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"resolve started a process: {args}")

    monkeypatch.setattr(subprocess, "Popen", refuse)


def test_the_whole_job_is_planned_at_once(tmp_path: Path, no_processes: None) -> None:
    with_dockerfile(tmp_path)
    (tmp_path / "cosign.key").write_text("key")
    (tmp_path / "cosign.pub").write_text("pub")
    run = make_run(tmp_path, GITLAB_ENV, key="cosign.key", build_args=["A=1"])
    p = resolved(run, ("build", "audit", "sign", "verify"))
    assert p.target.repository == "registry.example.com/group/proj"
    assert p.target.tags == (SHA[:8],)
    assert p.build is not None
    assert (p.build.context, p.build.dockerfile, p.build.build_args) == (
        tmp_path.resolve(),
        tmp_path.resolve() / "Dockerfile",
        {"A": "1"},
    )
    assert p.build.labels["org.opencontainers.image.revision"] == SHA
    assert (p.mode, p.signing) == ("key", KeySigning(str(tmp_path.resolve() / "cosign.key")))
    assert p.policy == KeyPolicy(str(tmp_path.resolve() / "cosign.pub"))
    assert p.image is None  # the build will say which digest
    assert p.target.annotations_for("v1")["com.gitlab.ci.job.id"] == "2002"


def test_verify_plans_no_build_and_no_signing(tmp_path: Path, no_processes: None) -> None:
    (tmp_path / "cosign.pub").write_text("pub")
    run = make_run(tmp_path, GITLAB_ENV, public_key="cosign.pub", digest="sha256:" + DIGEST_HEX)
    p = resolved(run, ("verify",))
    assert p.build is None and p.signing is None
    assert p.target.tags == ()  # no --tag: no tag check, common annotations only
    assert p.image == ImageRef("registry.example.com/group/proj", "sha256:" + DIGEST_HEX)


def test_sign_takes_the_image_of_an_earlier_run_and_refuses_another_repository(
    tmp_path: Path, no_processes: None
) -> None:
    (tmp_path / "cosign.key").write_text("key")
    ref = "registry.example.com/group/proj@sha256:" + DIGEST_HEX
    env = {**GITLAB_ENV, **earlier_run(ref)}
    p = resolved(make_run(tmp_path, env, key="cosign.key"), ("sign",))
    assert str(p.image) == ref and p.policy is None
    other = make_run(tmp_path, env, key="cosign.key", image="registry.example.com/group/other")
    with pytest.raises(InputError, match="IMAGE_REF names"):
        resolved(other, ("sign",))


def earlier_run(ref: str, **changes: str) -> dict[str, str]:
    """What a build of GITLAB_ENV's commit hands a later job (its dotenv, as variables)."""
    record = {
        "IMAGE_REF": ref,
        "PROVENANCE_COMMIT": SHA,
        "PROVENANCE_SOURCE": GITLAB_ENV["CI_PROJECT_URL"],
    }
    return {**record, **changes}


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"PROVENANCE_COMMIT": "f" * 40}, "was written for commit ffff"),
        ({"PROVENANCE_SOURCE": "https://gitlab.example.com/other/proj"}, "other/proj"),
    ],
)
def test_outputs_of_another_commit_or_repository_are_refused(
    tmp_path: Path, no_processes: None, changes: dict[str, str], needle: str
) -> None:
    (tmp_path / "cosign.key").write_text("key")
    ref = "registry.example.com/group/proj@sha256:" + DIGEST_HEX
    run = make_run(tmp_path, {**GITLAB_ENV, **earlier_run(ref, **changes)}, key="cosign.key")
    with pytest.raises(InputError, match=needle) as caught:
        resolved(run, ("sign",))
    assert "--digest" in (caught.value.hint or "")


def test_outputs_that_name_no_run_are_refused(tmp_path: Path, no_processes: None) -> None:
    (tmp_path / "cosign.key").write_text("key")
    env = {**GITLAB_ENV, "IMAGE_REF": "registry.example.com/group/proj@sha256:" + DIGEST_HEX}
    with pytest.raises(InputError, match="names no commit or repository"):
        resolved(make_run(tmp_path, env, key="cosign.key"), ("sign",))


def test_this_folders_own_dotenv_beats_another_jobs_image_ref_in_the_environment(
    tmp_path: Path, no_processes: None
) -> None:
    # GitLab hands every earlier job's dotenv to a job as variables; a job that built here
    # itself signs what it built.
    (tmp_path / "cosign.key").write_text("key")
    own = "registry.example.com/group/proj@sha256:" + "1" * 64
    other = "registry.example.com/group/proj@sha256:" + "2" * 64
    record = earlier_run(own)
    (tmp_path / "provenance.env").write_text("".join(f"{k}={v}\n" for k, v in record.items()))
    env = {**GITLAB_ENV, **earlier_run(other)}
    assert str(resolved(make_run(tmp_path, env, key="cosign.key"), ("sign",)).image) == own


def test_a_dotenv_whose_record_is_empty_is_refused_where_the_run_has_a_commit(
    tmp_path: Path, no_processes: None
) -> None:
    (tmp_path / "cosign.key").write_text("key")
    ref = "registry.example.com/group/proj@sha256:" + DIGEST_HEX
    (tmp_path / "provenance.env").write_text(
        f"IMAGE_REF={ref}\nPROVENANCE_COMMIT=\nPROVENANCE_SOURCE=\n"  # a build outside git
    )
    with pytest.raises(InputError, match="names no commit or repository"):
        resolved(make_run(tmp_path, GITLAB_ENV, key="cosign.key"), ("sign",))


def test_a_dry_run_leaves_earlier_outputs_alone(tmp_path: Path) -> None:
    from provenance_tasks.steps import outputs

    (tmp_path / "provenance.env").write_text("IMAGE_REF=kept\n")
    outputs.invalidate(make_run(tmp_path, dry_run=True))
    assert (tmp_path / "provenance.env").read_text() == "IMAGE_REF=kept\n"
    outputs.invalidate(make_run(tmp_path))
    assert not (tmp_path / "provenance.env").exists()
