"""Every platform signed and verified: a two-platform build signs the index per tag and each
platform manifest by its own digest (Harbor and podman/CRI-O look signatures up there), and
verify goes all the way down. The current engine builds real two-platform FROM-scratch images.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, annotations_of

pytestmark = pytest.mark.integration

PLATFORMS = "linux/amd64,linux/arm64"


def test_a_two_platform_image_is_signed_and_verified_all_the_way_down(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    if runner.testbed.engine == "classic":
        pytest.skip("the classic engine builds one platform into a single manifest")
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--platform",
        PLATFORMS,
        "--oci-annotation",
        "index:com.example.release=1.0",
        "--oci-annotation",
        "com.example.team=platform",
        "--label",
        "com.example.owner=ops",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    rows = report["verify"]["platforms"]
    # OCI annotations at their level (the index, each manifest); labels in each config, with CI's.
    repo, index_digest = env["CI_REGISTRY_IMAGE"], report["build"]["digest"]
    index = json.loads(registry.crane("manifest", f"{repo}@{index_digest}"))
    assert index["annotations"]["com.example.release"] == "1.0"
    for row in rows:
        manifest = json.loads(registry.crane("manifest", f"{repo}@{row['digest']}"))
        assert manifest["annotations"]["com.example.team"] == "platform"
        labels = json.loads(registry.crane("config", f"{repo}@{row['digest']}"))["config"]["Labels"]
        assert labels["com.example.owner"] == "ops"
        assert labels["org.opencontainers.image.revision"] == env["CI_COMMIT_SHA"]
    assert [r["platform"] for r in rows] == ["linux/amd64", "linux/arm64"]
    assert all(r["signed"] and r["verified"] for r in rows)
    assert [p["digest"] for p in report["sign"]["platforms"]] == [r["digest"] for r in rows]
    assert "attestation manifest(s) of BuildKit in the index: recognised" in done.stderr

    # A plain cosign finds each platform's own signature by the platform's digest, with the
    # annotations every tag shares (no `tag`: the tags name the index).
    repository = env["CI_REGISTRY_IMAGE"]
    index = registry.digest(f"{repository}:{env['CI_COMMIT_SHORT_SHA']}")
    assert index == report["build"]["digest"]
    for row in rows:
        payloads = registry.payloads(cosign, f"{repository}@{row['digest']}", "--key", str(pub))
        found = annotations_of(payloads[0])
        assert found["com.gitlab.ci.commit.sha"] == env["CI_COMMIT_SHA"] and "tag" not in found

    # One platform's signature removed: our verify fails, naming that platform (exit 3).
    arm64 = rows[1]["digest"]
    subprocess.run(
        [cosign, "clean", "--force", "--type", "signature", f"{repository}@{arm64}"],
        env=registry.env(),
        check=True,
        capture_output=True,
    )
    again = runner.run("verify", "--public-key", str(pub), env=env)
    assert again.returncode == 3, again.stderr
    assert f"platform linux/arm64 ({arm64})" in again.stderr
    assert "platform linux/amd64" in again.stderr and "linux/amd64 (" not in again.stderr


def test_both_formats_are_each_written_and_each_found_by_the_cosign_that_reads_it(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str]
) -> None:
    from tests.integration.conftest import COSIGNS

    if runner.testbed.engine == "classic":
        pytest.skip("the platforms are the current engine's; the formats are covered there")
    key, pub, password = key_pair
    cosign3, cosign2 = str(COSIGNS["cosign3"]), str(COSIGNS["cosign2"])
    env = pipelines.gitlab_key_mode(runner.testbed, cosign3, password)
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--platform",
        PLATFORMS,
        "--bundle-format",
        "both",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert {s["format"] for s in report["verify"]["signatures"]} == {"classic", "new"}
    rows = report["verify"]["platforms"]
    assert sorted((r["platform"], r["format"]) for r in rows if r["verified"]) == [
        ("linux/amd64", "classic"),
        ("linux/amd64", "new"),
        ("linux/arm64", "classic"),
        ("linux/arm64", "new"),
    ]
    repository = env["CI_REGISTRY_IMAGE"]
    for digest in [report["build"]["digest"], *(r["digest"] for r in rows)]:
        ref = f"{repository}@{digest}"
        # cosign 2 reads the classic .sig; cosign 3 the new bundle, asked for by name.
        assert registry.payloads(cosign2, ref, "--key", str(pub))
        bundles = registry.payloads(cosign3, ref, "--key", str(pub), "--new-bundle-format=true")
        kinds = {p["critical"]["type"] for p in bundles}  # type: ignore[index]
        assert "https://sigstore.dev/cosign/sign/v1" in kinds, kinds  # a bundle, not the .sig

    # cosign 2 can't write the new bundle: asked to, it refuses up front (exit 2).
    again = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--bundle-format",
        "both",
        env={**env, "INVOKE_PROVENANCE_COSIGN": cosign2},
    )
    assert (
        again.returncode == 2 and "cosign 2 can't sign an image in the new bundle" in again.stderr
    )


def test_buildkits_attestation_manifests_are_signed_only_when_asked(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    if runner.testbed.engine == "classic":
        pytest.skip("the classic engine makes no attestation manifests")
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    env.update(
        {
            "INVOKE_PROVENANCE_SIGN_ATTESTATION_MANIFESTS": "true",
            "INVOKE_PROVENANCE_PROVENANCE": "max",
        }
    )
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--platform",
        PLATFORMS,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    # buildx's own (unsigned) provenance is named beside ours: its setting and its manifests.
    named = report["attest"]["buildx_provenance"]
    assert named["setting"] == "mode=max" and len(named["attestation_manifests"]) == 2
    rows = report["verify"]["platforms"]
    signed = [r for r in rows if r["platform"].startswith("attestation of ")]
    assert len(signed) == 2 and all(r["verified"] for r in signed)
    for row in signed:  # each by its own digest, as a BuildKit build policy looks them up
        ref = f"{env['CI_REGISTRY_IMAGE']}@{row['digest']}"
        assert registry.payloads(cosign, ref, "--key", str(pub))


@pytest.mark.classic
def test_a_second_key_co_signs_a_keyless_image_all_the_way_down(
    runner: Runner, registry: Registry, context: Path, cosign: str, tmp_path: Path
) -> None:
    """podman/CRI-O policies accept only e-mail SANs: a CI keyless signature never passes them,
    so a key co-signs the index and every platform, and verify checks both signers."""
    from tests.integration.conftest import make_key_pair
    from tests.integration.test_sigstore import keyless_gitlab

    env, _ = keyless_gitlab(runner, cosign)
    second_key, second_pub = make_key_pair(cosign, tmp_path / "second" / "cosign")
    env["INVOKE_PROVENANCE_SECOND_KEY"] = str(second_key)
    platforms = [] if runner.testbed.engine == "classic" else ["--platform", PLATFORMS]
    done = runner.run("build-sign-verify", "--context", str(context), *platforms, env=env)
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    second = report["verify"]["second"]
    assert second["verified"] is True and second["policy"] == f"public key {second_pub}"
    assert all(row["verified"] for row in second["platforms"])
    digests = [report["build"]["digest"], *(row["digest"] for row in second["platforms"])]
    for digest in digests:  # what podman's sigstoreSigned policy would look up, with the key
        ref = f"{env['CI_REGISTRY_IMAGE']}@{digest}"
        assert registry.payloads(cosign, ref, "--key", str(second_pub))  # in the log too
    # A verify that expects a second key which never signed fails, naming it.
    other_key, _ = make_key_pair(cosign, tmp_path / "other" / "cosign")
    again = runner.run("verify", env={**env, "INVOKE_PROVENANCE_SECOND_KEY": str(other_key)})
    assert again.returncode == 3 and "second key (public key " in again.stderr, again.stderr
