"""Identity mode: certificates from a self-made CA in the shape of GitLab's keyless ones.

Keyless signing needs Fulcio and Rekor, which can't be reached here; a leaf with the same URI SAN
and Fulcio issuer extensions, signed offline, makes verify check identity and issuer for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner
from tests.testbed import pki

# cosign 2.5's import-key-pair rejects EC keys; the key cosign 3 imports signs with either major.
IMPORTER = str(COSIGNS["cosign3"])


def sign_in_pipeline(
    runner: Runner, context: Path, env: dict[str, str], leaf: pki.SigningCert, cosign: str
) -> str:
    env.update({"COSIGN_PASSWORD": leaf.password, "INVOKE_PROVENANCE_COSIGN": cosign})
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(leaf.cosign_key),
        "--certificate",
        str(leaf.cert),
        "--certificate-chain",
        str(leaf.chain),
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert f"identity {pipelines.identity(env)} issued by {pipelines.SERVER}" in done.stderr
    return done.stderr


@pytest.mark.integration
@pytest.mark.parametrize("tag", [None, "v1.2.3"], ids=["branch", "tag"])
def test_identity_derived_from_the_pipeline_verifies(
    runner: Runner,
    context: Path,
    test_ca: pki.CertificateAuthority,
    cosign: str,
    tmp_path: Path,
    tag: str | None,
) -> None:
    env = pipelines.gitlab(runner.testbed, tag=tag, config_path="ci/build.gitlab-ci.yml")
    expected = pipelines.identity(env)
    assert ("@refs/tags/v1.2.3" in expected) == bool(tag)
    leaf = pki.issue_signing_cert(
        test_ca,
        tmp_path / "leaf",
        identity_uri=expected,
        issuer=pipelines.SERVER,
        name="job",
        cosign=IMPORTER,
    )
    sign_in_pipeline(runner, context, env, leaf, cosign)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"CI_PROJECT_URL": "https://gitlab.example.com/group/other"}, "group/other"),
        ({"CI_COMMIT_REF_NAME": "feature"}, "refs/heads/feature"),
        ({"CI_SERVER_URL": "https://gitlab.evil.example"}, "gitlab.evil.example"),
    ],
    ids=["wrong-project", "wrong-ref", "wrong-issuer"],
)
def test_a_wrong_project_ref_or_issuer_fails(
    runner: Runner,
    registry: Registry,
    context: Path,
    test_ca: pki.CertificateAuthority,
    cosign: str,
    tmp_path: Path,
    change: dict[str, str],
    needle: str,
) -> None:
    env = pipelines.gitlab(runner.testbed)
    leaf = pki.issue_signing_cert(
        test_ca,
        tmp_path / "leaf",
        identity_uri=pipelines.identity(env),
        issuer=pipelines.SERVER,
        name="job",
        cosign=IMPORTER,
    )
    sign_in_pipeline(runner, context, env, leaf, cosign)

    # A later verify job whose expectations differ: the signature must not pass. The digest is
    # given (another project's dotenv would be refused before any verify, exit 2).
    verify_env = {**env, **change}
    digest = json.loads((runner.cwd / "provenance-report.json").read_text())["outputs"][
        "IMAGE_DIGEST"
    ]
    done = runner.run(
        "verify",
        "--image",
        env["CI_REGISTRY_IMAGE"],
        "--digest",
        digest,
        "--mode",
        "certificate",
        "--certificate-chain",
        str(leaf.chain),
        env=verify_env,
    )
    assert done.returncode == 3, done.stderr
    assert "verification of" in done.stderr and needle in done.stderr
    assert "Traceback" not in done.stderr
