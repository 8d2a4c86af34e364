"""--dry-run prints the exact commands, secrets redacted, and changes nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import TOOLS, Registry, Runner


@pytest.mark.integration
def test_dry_run_prints_every_command_and_pushes_nothing(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab(runner.testbed)
    env.update({"COSIGN_PASSWORD": password, "INVOKE_PROVENANCE_COSIGN": cosign})
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--no-tlog",
        "--dry-run",
        "--cache-to",
        "type=registry,ref=example.com/cache,mode=max",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout + done.stderr
    repository = env["CI_REGISTRY_IMAGE"]
    assert "--password-stdin" in out  # the login it would run
    assert (
        "buildx" in out and "--push" in out and f"{repository}:{env['CI_COMMIT_SHORT_SHA']}" in out
    )
    assert "type=registry,ref=example.com/cache,mode=max" in out
    assert f"sign --yes --key {key}" in out and f"{repository}@sha256:" in out
    assert "verify --output json --key" in out
    for secret in (env["CI_JOB_TOKEN"], env["CI_REGISTRY_PASSWORD"], password):
        assert secret not in out
    # Nothing reached the registry.
    listed = subprocess.run(
        [str(TOOLS / "bin" / "crane"), "ls", repository],
        env=registry.env(),
        capture_output=True,
        text=True,
    )
    assert listed.returncode != 0 or not listed.stdout.strip()
    assert not (runner.cwd / "provenance.env").exists()
