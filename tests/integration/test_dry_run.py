"""--dry-run prints the exact commands, secrets redacted, and changes nothing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner


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
    # The build exports a layout and pushes nothing; the tag is published after verify.
    assert "buildx build" in out and "--output type=oci,dest=" in out and "--push" not in out
    assert f"to {repository}:{env['CI_COMMIT_SHORT_SHA']}" in out
    assert "type=registry,ref=example.com/cache,mode=max" in out
    assert f"sign --yes --key {key}" in out and f"{repository}@sha256:" in out
    assert "verify --output json --key" in out
    for secret in (env["CI_JOB_TOKEN"], env["CI_REGISTRY_PASSWORD"], password):
        assert secret not in out
    assert registry.holds_nothing(repository)  # nothing reached the registry
    assert not (runner.cwd / "provenance.env").exists()
    # The summary says what a dry run is: planned steps, no verdict.
    assert "DRY RUN: the commands above were shown, not run" in out
    assert "verification: VERIFIED" not in out and not re.search(r"\bsign\s+ok\b", out)
    assert re.search(r"\bsign\s+planned\b", out)


@pytest.mark.integration
def test_verify_has_a_dry_run_that_reads_nothing(
    runner: Runner, registry: Registry, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    _, pub, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    digest = "sha256:" + "c" * 64
    done = runner.run(
        "verify", "--digest", digest, "--public-key", str(pub), "--tag", "v1", "--dry-run", env=env
    )
    assert done.returncode == 0, done.stderr
    assert f"verify --output json --key {pub}" in done.stderr and digest in done.stderr
    assert "DRY RUN" in done.stderr


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
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])


@pytest.mark.integration
@pytest.mark.parametrize("task", ["build", "build-sign-verify", "sign"])
def test_h_prints_help_and_pushes_nothing(
    runner: Runner, registry: Registry, context: Path, task: str
) -> None:
    env = pipelines.gitlab(runner.testbed)
    # -h once meant --cache-from: `build -h CONTEXT` built and pushed.
    given = ["--context", str(context)] if task != "sign" else []
    done = runner.run(task, "-h", *given, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: ") and f"] {task} [--options]" in done.stdout
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])
    assert "Summary" not in done.stderr  # no run started


@pytest.mark.integration
def test_invokes_own_dry_flag_is_a_dry_run(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run(
        "--dry", "build-sign-verify", "--context", str(context), "--key", str(key), env=env
    )
    assert done.returncode == 0, done.stderr
    assert "dry-run" in done.stderr and "--output type=oci,dest=" in done.stderr
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])


@pytest.mark.integration
def test_a_dry_run_line_pasted_into_a_shell_gives_the_same_argv(
    runner: Runner, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    """shlex.join: a user name with a comma keeps its CSV quotes through the shell."""
    import shlex

    from tests.integration import joblog

    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)  # user "Doe, Jo Ünïcode"
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--key", str(key), "--dry-run", env=env
    )
    line = next(ln for ln in joblog.plain(done.stderr).splitlines() if " sign --yes " in ln)
    argv = shlex.split(line.split("command=", 1)[1])
    pairs = [argv[i + 1] for i, a in enumerate(argv) if a == "-a"]
    assert '"com.gitlab.ci.user.name=Doe, Jo Ünïcode"' in pairs  # quotes survive the paste
