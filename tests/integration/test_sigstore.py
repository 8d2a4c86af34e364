"""Keyless signing end to end, and every mode with the transparency log on, against our Sigstore.

Real cosign 2 and 3, a real registry, and the Sigstore test bed (tests/testbed/sigstore): Fulcio
issues the certificate from an ID token it verifies, Rekor logs the signature, and cosign checks
chain, SCT, log entry and signer for real. The tutorial's own verify command is the judge.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import (
    COSIGNS,
    Registry,
    Runner,
    annotations_of,
    make_key_pair,
)
from tests.testbed import sigstore as bed

pytestmark = pytest.mark.integration


def keyless_gitlab(runner: Runner, cosign: str, **changes: str) -> tuple[dict[str, str], str]:
    """A GitLab pipeline with an `id_tokens:` token for our Fulcio; returns (env, token)."""
    env = pipelines.gitlab(runner.testbed, **changes)  # type: ignore[arg-type]
    token = runner.sigstore.mint(bed.gitlab_claims(env))
    env.update({"SIGSTORE_ID_TOKEN": token, "INVOKE_PROVENANCE_COSIGN": cosign})
    return env, token


def requests_since(sigstore: bed.Sigstore, before: int) -> list[str]:
    return [f"{r['method']} {r['path']} {r['status']}" for r in sigstore.requests()[before:]]


def assert_no_secret(runner: Runner, done: object, *secrets: str) -> None:
    # GitHub's ::add-mask:: lines name secrets on purpose: the runner takes them out of the log.
    outputs = [
        "\n".join(line for line in text.splitlines() if not line.startswith("::add-mask::"))
        for text in (getattr(done, "stdout", ""), getattr(done, "stderr", ""))
    ]
    for name in ("provenance.env", "provenance-report.json"):
        path = runner.cwd / name
        outputs.append(path.read_text() if path.exists() else "")
    for secret in secrets:
        leaks = [t[max(0, t.index(secret) - 300) :][:400] for t in outputs if secret in t]
        assert not leaks, leaks


@pytest.mark.classic
@pytest.mark.parametrize(
    "pipeline",
    [{}, {"tag": "v1.2.3"}, {"config_path": "ci/build.gitlab-ci.yml"}],
    ids=["branch", "tag", "custom-config-path"],
)
def test_gitlab_keyless_signs_logs_and_verifies_by_identity(
    runner: Runner, registry: Registry, context: Path, cosign: str, pipeline: dict[str, str]
) -> None:
    env, token = keyless_gitlab(runner, cosign, **pipeline)
    before = len(runner.sigstore.requests())
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    assert "(keyless)" in done.stderr and "VERIFIED" in done.stderr
    identity = pipelines.identity(env)
    assert f"identity {identity} issued by {pipelines.SERVER}" in done.stderr

    # One certificate per signature and one Rekor entry each, by the major's own Fulcio API,
    # and one of each for the signed SLSA provenance of the image.
    fulcio = "/api/v2/signingCert" if cosign.endswith("3") else "/api/v1/signingCert"
    asked = requests_since(runner.sigstore, before)
    tags = [env["CI_COMMIT_SHORT_SHA"], *([pipeline["tag"]] if "tag" in pipeline else [])]
    assert (
        asked.count(f"POST {fulcio} 201" if "v1" in fulcio else f"POST {fulcio} 200")
        == len(tags) + 1
    )
    assert asked.count("POST /api/v1/log/entries 201") == len(tags) + 1

    # The tutorial's own verify, with our trust: identity, issuer and the tag annotation.
    repository = env["CI_REGISTRY_IMAGE"]
    digest = registry.digest(f"{repository}:{tags[0]}")
    for tag in tags:
        payloads = registry.payloads(
            cosign,
            f"{repository}@{digest}",
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            env["CI_SERVER_URL"],
            "--annotations",
            f"tag={tag}",
        )
        expected = pipelines.expected_annotations(env, tag)
        assert any(annotations_of(p) == expected for p in payloads), payloads
    if not pipeline:  # a branch pipeline with the default config path: the tutorial's line
        assert identity == (
            f"{env['CI_PROJECT_URL']}//.gitlab-ci.yml@refs/heads/{env['CI_COMMIT_REF_NAME']}"
        )
    assert_no_secret(runner, done, token, env["CI_JOB_TOKEN"], env["CI_REGISTRY_PASSWORD"])


def test_gitlab_keyless_new_bundle_on_cosign3(
    runner: Runner, registry: Registry, context: Path
) -> None:
    cosign = str(COSIGNS["cosign3"])
    env, _ = keyless_gitlab(runner, cosign)
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--bundle-format", "new", env=env
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    formats = {s["format"] for s in report["verify"]["signatures"]}
    assert formats == {"new"}


@pytest.fixture
def token_endpoint(runner: Runner) -> Iterator[tuple[bed.TokenEndpoint, dict[str, str]]]:
    env = pipelines.github(runner.testbed)
    endpoint = bed.TokenEndpoint(runner.sigstore, env)
    try:
        yield endpoint, env
    finally:
        endpoint.close()


def test_github_keyless_asks_the_runner_for_a_token_per_attempt(
    runner: Runner,
    registry: Registry,
    context: Path,
    cosign: str,
    token_endpoint: tuple[bed.TokenEndpoint, dict[str, str]],
) -> None:
    endpoint, env = token_endpoint
    env.update({**endpoint.environ, "INVOKE_PROVENANCE_COSIGN": cosign})
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    # Once up front (a job without id-token: write fails before the push), once per signature,
    # once for the attestation.
    assert endpoint.audiences == ["sigstore", "sigstore", "sigstore"]
    identity = f"https://github.com/{env['GITHUB_WORKFLOW_REF']}"
    assert f"identity {identity} issued by {bed.GITHUB_ISSUER}" in done.stderr
    digest = registry.digest(f"{env['INVOKE_PROVENANCE_IMAGE']}:{env['GITHUB_SHA'][:8]}")
    assert (
        registry.cosign_verify(
            cosign,
            f"{env['INVOKE_PROVENANCE_IMAGE']}@{digest}",
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            bed.GITHUB_ISSUER,
        ).returncode
        == 0
    )
    assert_no_secret(runner, done, endpoint.request_token, *endpoint.minted)


def test_github_keyless_in_a_reusable_workflow_expects_the_called_workflow(
    runner: Runner, context: Path, cosign: str
) -> None:
    """The runner's token names the called workflow (job_workflow_ref), which Fulcio certifies
    and no variable names: the expected identity comes from the token asked for."""
    env = pipelines.github(runner.testbed)
    shared = "octo-org/shared/.github/workflows/build.yml@refs/heads/main"
    endpoint = bed.TokenEndpoint(runner.sigstore, env, job_workflow_ref=shared)
    try:
        env.update({**endpoint.environ, "INVOKE_PROVENANCE_COSIGN": cosign})
        done = runner.run("build-sign-verify", "--context", str(context), env=env)
    finally:
        endpoint.close()
    assert done.returncode == 0, done.stderr
    assert f"identity https://github.com/{shared} issued by" in done.stderr
    assert shared not in env["GITHUB_WORKFLOW_REF"]  # the caller's file is another one


def test_github_keyless_takes_sigstore_id_token_too(
    runner: Runner, context: Path, cosign: str
) -> None:
    env = pipelines.github(runner.testbed)
    token = runner.sigstore.mint(bed.github_claims(env))
    env.update({"SIGSTORE_ID_TOKEN": token, "INVOKE_PROVENANCE_COSIGN": cosign})
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    assert_no_secret(runner, done, token)


@pytest.mark.parametrize("wrong", ["identity", "issuer"])
def test_a_wrong_signer_fails_verify_with_expected_against_found(
    runner: Runner, context: Path, cosign: str, wrong: str
) -> None:
    env, _ = keyless_gitlab(runner, cosign)
    assert runner.run("build-sign-verify", "--context", str(context), env=env).returncode == 0
    expected = {
        "identity": "https://gitlab.example.com/someone/else//.gitlab-ci.yml@refs/heads/main",
        "issuer": "https://gitlab.evil.example",
    }[wrong]
    done = runner.run("verify", f"--{wrong}", expected, env=env)
    assert done.returncode == 3, done.stderr
    identity, issuer = pipelines.identity(env), env["CI_SERVER_URL"]
    wanted = f"identity {expected if wrong == 'identity' else identity} issued by " + (
        expected if wrong == "issuer" else issuer
    )
    # Expected against found, as the report says it: the certificate's own signer.
    assert f"signer: expected {wanted}, found identity {identity} issued by {issuer}" in (
        done.stderr
    )


@pytest.mark.parametrize(
    "claims",
    [{"exp": 1_700_000_000}, {"aud": "gitlab"}],
    ids=["expired", "wrong-audience"],
)
def test_a_token_fulcio_would_refuse_is_bad_input_before_any_push(
    runner: Runner, registry: Registry, context: Path, cosign: str, claims: dict[str, object]
) -> None:
    env = pipelines.gitlab(runner.testbed)
    token = runner.sigstore.mint(bed.gitlab_claims(env, **claims))
    env.update({"SIGSTORE_ID_TOKEN": token, "INVOKE_PROVENANCE_COSIGN": cosign})
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 2, done.stderr
    assert "the ID token in SIGSTORE_ID_TOKEN" in done.stderr
    assert "id_tokens: SIGSTORE_ID_TOKEN: aud: sigstore" in done.stderr  # what to fix
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])
    assert_no_secret(runner, done, token)


def test_a_forged_token_is_refused_by_fulcio_at_sign_time(
    runner: Runner, context: Path, cosign: str, tmp_path: Path
) -> None:
    env = pipelines.gitlab(runner.testbed)
    forger = tmp_path / "forger.key"
    bed.make_rsa_key(forger)
    token = runner.sigstore.mint(bed.gitlab_claims(env), key=forger)
    env.update({"SIGSTORE_ID_TOKEN": token, "INVOKE_PROVENANCE_COSIGN": cosign})
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 4, done.stderr
    assert "Fulcio answered unauthorized" in done.stderr
    assert "Fulcio refused the ID token" in done.stderr
    assert done.stderr.count("attempt 1 failed") == 0  # a refusal is never retried
    assert_no_secret(runner, done, token)


@pytest.mark.parametrize("mode", ["key", "certificate"])
def test_key_and_certificate_modes_write_a_rekor_entry(
    runner: Runner,
    registry: Registry,
    context: Path,
    cosign: str,
    key_pair: tuple[Path, Path, str],
    mode: str,
    tmp_path: Path,
) -> None:
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    args = ["--key", str(key)]
    if mode == "certificate":
        from tests.integration.test_identity_mode import IMPORTER
        from tests.testbed import pki

        ca = pki.make_ca(tmp_path / "ca", "mode test CA")
        leaf = pki.issue_signing_cert(
            ca,
            tmp_path / "leaf",
            identity_uri=pipelines.identity(env),
            issuer=pipelines.SERVER,
            cosign=IMPORTER,
        )
        env["COSIGN_PASSWORD"] = leaf.password
        args = [
            "--key",
            str(leaf.cosign_key),
            "--certificate",
            str(leaf.cert),
            "--certificate-chain",
            str(leaf.chain),
        ]
    before = len(runner.sigstore.requests())
    done = runner.run("build-sign-verify", "--context", str(context), *args, env=env)
    assert done.returncode == 0, done.stderr
    asked = requests_since(runner.sigstore, before)
    assert asked.count("POST /api/v1/log/entries 201") == 2  # the signature, the attestation
    assert not [r for r in asked if "signingCert" in r]  # no Fulcio in these modes
    if mode == "key":
        digest = registry.digest(f"{env['CI_REGISTRY_IMAGE']}:{env['CI_COMMIT_SHORT_SHA']}")
        payloads = registry.payloads(
            cosign, f"{env['CI_REGISTRY_IMAGE']}@{digest}", "--key", str(pub)
        )
        assert all("Bundle" in p["optional"] for p in payloads)  # type: ignore[operator]
    else:
        assert "SCT is not checked" in done.stderr  # a CA of your own has no CT log: said so


def test_certificate_mode_with_the_new_bundle_verifies_against_a_root_made_of_the_chain(
    runner: Runner, context: Path, tmp_path: Path
) -> None:
    from tests.integration.test_identity_mode import IMPORTER
    from tests.testbed import pki

    cosign = str(COSIGNS["cosign3"])
    env = pipelines.gitlab(runner.testbed)
    ca = pki.make_ca(tmp_path / "ca", "new bundle CA")
    leaf = pki.issue_signing_cert(
        ca,
        tmp_path / "leaf",
        identity_uri=pipelines.identity(env),
        issuer=pipelines.SERVER,
        cosign=IMPORTER,
    )
    env.update({"COSIGN_PASSWORD": leaf.password, "INVOKE_PROVENANCE_COSIGN": cosign})
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--bundle-format",
        "new",
        "--key",
        str(leaf.cosign_key),
        "--certificate",
        str(leaf.cert),
        "--certificate-chain",
        str(leaf.chain),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert {s["format"] for s in report["verify"]["signatures"]} == {"new"}
    assert "SCT is not checked" in done.stderr  # a CA of your own has no CT log: said so


def test_cosign2_asked_for_the_new_bundle_refuses_before_anything_is_pushed(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str]
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, str(COSIGNS["cosign2"]), password)
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--bundle-format",
        "new",
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "cosign 2 can't sign an image in the new bundle format" in done.stderr
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])


def test_an_env_key_signs_and_verifies_with_the_log_on(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    """env://VAR keys reach cosign: the variable is passed on on purpose, its value redacted."""
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    env.update({"SIGNING_KEY": key.read_text(), "SIGNING_PUB": pub.read_text()})
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        "env://SIGNING_KEY",
        "--public-key",
        "env://SIGNING_PUB",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert_no_secret(runner, done, env["SIGNING_KEY"].strip().splitlines()[1])


def test_an_env_key_without_a_public_key_verifies_against_its_own_public_half(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    """The usual GitLab set-up, a private key in a CI variable and nothing else: verify reads the
    public half that the key check printed. Another key's public half fails the same image."""
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    env["SIGNING_KEY"] = key.read_text()
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--key", "env://SIGNING_KEY", env=env
    )
    assert done.returncode == 0, done.stderr
    assert "the public key of the signing key env://SIGNING_KEY" in done.stderr
    image_ref = json.loads((runner.cwd / "provenance-report.json").read_text())["outputs"][
        "IMAGE_REF"
    ]
    _, other_pub = make_key_pair(cosign, context.parent / "other" / "cosign")
    verified = registry.cosign_verify(
        cosign, image_ref, "--key", str(other_pub), "--insecure-ignore-tlog"
    )
    assert verified.returncode != 0  # signed by the env key, not by any key
    assert (
        registry.cosign_verify(
            cosign, image_ref, "--key", str(pub), "--insecure-ignore-tlog"
        ).returncode
        == 0
    )


def test_an_env_key_with_the_wrong_password_is_found_before_the_push(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    key, _, _ = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, "not-the-password")
    env["SIGNING_KEY"] = key.read_text()
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--key", "env://SIGNING_KEY", env=env
    )
    assert done.returncode == 2, done.stderr
    assert "wrong password" in done.stderr
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])
