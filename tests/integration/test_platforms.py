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
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:  # fmt: skip
    if runner.testbed.engine == "classic":
        pytest.skip("the classic engine builds one platform into a single manifest")
    key, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key),
                      "--platform", PLATFORMS, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr
    report: dict[str, Any] = json.loads((runner.cwd / "provenance-report.json").read_text())
    rows = report["verify"]["platforms"]
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
    subprocess.run([cosign, "clean", "--force", "--type", "signature", f"{repository}@{arm64}"],
                   env=registry.env(), check=True, capture_output=True)  # fmt: skip
    again = runner.run("verify", "--public-key", str(pub), env=env)
    assert again.returncode == 3, again.stderr
    assert f"platform linux/arm64 ({arm64})" in again.stderr
    assert "platform linux/amd64" in again.stderr and "linux/amd64 (" not in again.stderr
