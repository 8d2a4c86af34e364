"""`CI=true` in a CI we don't know is not a laptop: no localhost registry, no throwaway key pair.

Jenkins sets `CI=true`; gitlab-ci-local sets `CI=true` and `GITLAB_CI=false`. Either way the run
says what it detected in its first line, and asks for what it won't guess.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.conftest import Registry, Runner

pytestmark = pytest.mark.integration


def test_ci_true_with_no_known_ci_asks_for_an_image_and_makes_no_key(
    runner: Runner, registry: Registry, context: Path
) -> None:
    done = runner.run("build-sign-verify", "--context", str(context), env={"CI": "true"})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("CI: an unknown CI: CI=true, but neither GITLAB_CI=true")
    assert "provenance-tasks: no image repository" in done.stderr and "--image" in done.stderr
    assert not (runner.cwd / ".provenance").exists()  # no key pair made
    assert not (runner.cwd / "provenance.env").exists()


def test_an_unknown_ci_with_an_image_still_wants_a_signing_mode(
    runner: Runner, registry: Registry, context: Path, cosign: str
) -> None:
    image = f"{runner.testbed.plain_registry}/unknown-ci/app"
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--image",
        image,
        env={"CI": "true", "INVOKE_PROVENANCE_COSIGN": cosign},
    )
    assert done.returncode == 2, done.stderr
    assert "key mode needs a key" in done.stderr and "no key pair is made in CI" in done.stderr
    assert not (runner.cwd / ".provenance").exists()
    assert registry.holds_nothing(image)


def test_gitlab_ci_local_is_told_how_to_get_gitlabs_defaults(runner: Runner, context: Path) -> None:
    env = {"CI": "true", "GITLAB_CI": "false"}
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 2, done.stderr
    assert "gitlab-ci-local" in done.stderr and "--variable GITLAB_CI=true" in done.stderr


def test_an_unknown_ci_given_image_and_key_runs_and_says_where_it_ran(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, _, password = key_pair
    image = f"{runner.testbed.plain_registry}/unknown-ci/app"
    env = {
        "CI": "true",
        "COSIGN_PASSWORD": password,
        "INVOKE_PROVENANCE_COSIGN": cosign,
        "INVOKE_PROVENANCE_LOG_FORMAT": "json",
    }
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--image",
        image,
        "--key",
        str(key),
        "--tag",
        "v1",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines()]
    assert records[0]["event"] == "run.start" and records[0]["provider"] == "unknown-ci"
    assert records[-1]["verified"] is True
    assert registry.digest(f"{image}:v1") == records[-1]["digest"]
