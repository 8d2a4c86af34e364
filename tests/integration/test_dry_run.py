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
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
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


@pytest.mark.integration
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--image", "Registry.example.com/Group/App"], "uppercase"),
        (["--tag", "sha256:" + "a" * 64], "digest"),
        (["--annotation", "bad key=1"], "bad key"),
        (["--mode", "keyless", "--key", "cosign.key"], "both"),
        (["--key", "foo://k"], "foo://"),
    ],
)
def test_bad_input_exits_2_with_one_message_and_pushes_nothing(
    runner: Runner, registry: Registry, context: Path, args: list[str], needle: str
) -> None:
    env = pipelines.gitlab(runner.testbed)
    done = runner.run("build-sign-verify", "--context", str(context), *args, env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert needle.lower() in done.stderr.lower()
    assert "build:" not in done.stderr  # no step started
    listed = subprocess.run(
        [str(TOOLS / "bin" / "crane"), "ls", env["CI_REGISTRY_IMAGE"]],
        env=registry.env(),
        capture_output=True,
        text=True,
    )
    assert listed.returncode != 0 or not listed.stdout.strip()
