"""Signed SLSA v1 provenance: attached by build-sign-verify to the image and each platform,
verified before any tag moves, and read back by a plain `cosign verify-attestation`.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.sigstore import cosign2_trust_files
from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner
from tests.integration.test_sigstore import keyless_gitlab

pytestmark = pytest.mark.integration


def statements(
    registry: Registry, cosign: str, ref: str, *policy: str, kind: str = "slsaprovenance1"
) -> list[dict[str, Any]]:
    """What a plain cosign verify-attestation of `kind` reads at `ref`, trusting our Sigstore."""
    env = registry.env()
    trust = ["--trusted-root", str(registry.sigstore.trusted_root)]
    if not cosign.endswith("3"):
        trust = []
        env.update(cosign2_trust_files(registry.sigstore.trusted_root, registry.config / "t2"))
    done = subprocess.run(
        [cosign, "verify-attestation", "--type", kind, *policy, *trust, ref],
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return [json.loads(base64.b64decode(envelope["payload"])) for envelope in lines]


def test_keyless_provenance_names_commit_job_build_type_and_builder(
    runner: Runner, registry: Registry, context: Path, cosign: str
) -> None:
    env, _ = keyless_gitlab(runner, cosign)
    platforms = (
        [] if runner.testbed.engine == "classic" else ["--platform", "linux/amd64,linux/arm64"]
    )
    done = runner.run("build-sign-verify", "--context", str(context), *platforms, env=env)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    attested = report["attestations"]["subjects"]
    assert all(row["verified"] for row in attested)
    assert len(attested) == (1 if not platforms else 3)  # the index, then each platform
    steps = [s["name"] for s in report["steps"]]
    assert steps.index("publish") > steps.index("verify-attestation") > steps.index("attest")

    builder = f"{env['CI_PROJECT_URL']}//{env['CI_CONFIG_PATH']}"
    policy = [
        "--certificate-identity",
        pipelines.identity(env),
        "--certificate-oidc-issuer",
        env["CI_SERVER_URL"],
    ]
    for row in attested:
        ref = f"{env['CI_REGISTRY_IMAGE']}@{row['digest']}"
        statement = statements(registry, cosign, ref, *policy)[0]
        assert statement["predicateType"] == "https://slsa.dev/provenance/v1"
        assert statement["subject"][0]["digest"]["sha256"] == row["digest"].split(":")[1]
        predicate = statement["predicate"]
        definition, details = predicate["buildDefinition"], predicate["runDetails"]
        assert definition["buildType"] == "https://provenance-tasks.dev/buildtypes/buildx/v1"
        assert definition["resolvedDependencies"][0]["digest"]["gitCommit"] == env["CI_COMMIT_SHA"]
        assert details["builder"]["id"] == builder
        assert details["metadata"]["invocationId"] == env["CI_JOB_URL"]


def test_provenance_from_another_builder_fails_verify_attestation_by_name(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    # The same commit verified by a job of another CI configuration: its builder id differs.
    again = runner.run(
        "verify-attestation",
        "--public-key",
        str(pub),
        env={**env, "CI_CONFIG_PATH": "ci/other.yml"},
    )
    assert again.returncode == 3, again.stderr
    assert f"builder: expected '{env['CI_PROJECT_URL']}//ci/other.yml'" in again.stderr
    ok = runner.run("verify-attestation", "--public-key", str(pub), env=env)
    assert ok.returncode == 0, ok.stderr
    # That other job, told which builder to expect: it passes.
    told = runner.run(
        "verify-attestation",
        "--public-key",
        str(pub),
        "--builder-id",
        f"{env['CI_PROJECT_URL']}//{env['CI_CONFIG_PATH']}",
        env={**env, "CI_CONFIG_PATH": "ci/other.yml"},
    )
    assert told.returncode == 0, told.stderr
    # --no-attest: no provenance, and so nothing to verify.
    runner.run(
        "build-sign-verify", "--context", str(context), "--key", str(key), "--no-attest", env=env
    )
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert "attest" not in [s["name"] for s in report["steps"]]


def test_a_cyclonedx_sbom_handed_in_is_attested_with_its_own_content(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    component = {"type": "application", "name": "busybox", "version": "1.35"}
    sbom = {"bomFormat": "CycloneDX", "specVersion": "1.5", "version": 1, "components": [component]}
    (runner.cwd / "sbom.cdx.json").write_text(json.dumps(sbom))
    (runner.cwd / "bad.json").write_text(json.dumps({"spdxVersion": "SPDX-2.3"}))

    # A file that isn't the type it claims: refused before the build, nothing pushed.
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--predicate",
        "cyclonedx=bad.json",
        env=env,
    )
    assert done.returncode == 2 and "is not cyclonedx" in done.stderr, done.stderr
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])

    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--predicate",
        "cyclonedx=sbom.cdx.json",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    types = sorted(row["type"] for row in report["attestations"]["subjects"] if row["verified"])
    assert types == ["https://cyclonedx.org/bom", "https://slsa.dev/provenance/v1"]
    ref = f"{env['CI_REGISTRY_IMAGE']}@{report['build']['digest']}"
    found = statements(registry, cosign, ref, "--key", str(pub), kind="cyclonedx")
    assert found[0]["predicate"] == sbom


def test_the_base_image_and_its_digest_are_resolved_dependencies(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    """buildx's metadata names the images a build pulled, with digests, even with its own
    provenance off: the signed predicate lists them."""
    if runner.testbed.engine == "classic":
        pytest.skip("docker 20.10's buildx metadata names no materials")
    from tests.integration.conftest import make_context

    base_context = make_context(tmp_path / "base", content="base")
    base = f"{runner.testbed.plain_registry}/bases/busybox-{tmp_path.name[-6:].lower()}:1"
    subprocess.run(
        [
            "docker",
            "buildx",
            "build",
            "--progress",
            "quiet",
            "--provenance=false",
            "--tag",
            base,
            "--push",
            str(base_context),
        ],
        env=runner.env(),
        check=True,
        capture_output=True,
    )
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text(f"FROM {base}\nCOPY Dockerfile /Dockerfile\n")
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(child), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    pinned = registry.digest(base)
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    ref = f"{env['CI_REGISTRY_IMAGE']}@{report['build']['digest']}"
    public = str(key.with_suffix(".pub"))
    statement = statements(registry, cosign, ref, "--key", public)[0]  # its log entry checked
    dependencies = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    images = [d for d in dependencies if d.get("uri", "").startswith("pkg:docker/")]
    assert len(images) == 1 and base.rsplit(":", 1)[0] in images[0]["uri"]
    assert images[0]["digest"] == {"sha256": pinned.split(":", 1)[1]}
