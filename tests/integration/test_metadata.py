"""Honest metadata: the image's times are the commit's, the source is a URL, a changed working tree
is said and recorded, and a re-run of the same commit says whether it made the same digest.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, make_context

pytestmark = pytest.mark.integration

GIT = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
    "GIT_CONFIG_GLOBAL": os.devnull,
}


def config_of(registry: Registry, ref: str) -> dict[str, object]:
    found = json.loads(registry.crane("config", ref))
    assert isinstance(found, dict)
    return found


def report_of(runner: Runner) -> dict[str, object]:
    found = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert isinstance(found, dict)
    return found


def test_created_is_the_commits_time_in_the_config_and_the_label(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    config = config_of(registry, f"{env['CI_REGISTRY_IMAGE']}:{env['CI_COMMIT_SHORT_SHA']}")
    labels = config["config"]["Labels"]  # type: ignore[index]
    # CI_COMMIT_TIMESTAMP, never the time of the build (BuildKit's SOURCE_DATE_EPOCH).
    assert config["created"] == "2026-11-30T12:00:00Z"
    assert labels["org.opencontainers.image.created"] == "2026-11-30T12:00:00Z"
    assert report_of(runner)["source"]["created_from"] == "CI_COMMIT_TIMESTAMP"  # type: ignore[index]


@pytest.mark.classic
def test_a_builder_that_ignores_source_date_epoch_is_said_not_hidden(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    if runner.testbed.engine != "classic":
        pytest.skip("the current engine's BuildKit honours SOURCE_DATE_EPOCH: tested above")
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    config = config_of(registry, f"{env['CI_REGISTRY_IMAGE']}:{env['CI_COMMIT_SHORT_SHA']}")
    # docker 20.10's BuildKit stamps the build's time; the label still says the commit's.
    assert config["created"] != "2026-11-30T12:00:00Z"
    assert config["config"]["Labels"]["org.opencontainers.image.created"] == "2026-11-30T12:00:00Z"  # type: ignore[index]
    assert "this builder ignores SOURCE_DATE_EPOCH" in done.stderr
    source = report_of(runner)["source"]
    assert source["config_created"] == config["created"]  # type: ignore[index]


def rebuilt(runner: Runner, context: Path, env: dict[str, str], *flags: str) -> dict[str, object]:
    """build-sign-verify again, from a fresh checkout of the same commit (new file times, an
    empty build cache), in the folder that holds the last build's outputs."""
    later = time.time() + 60  # after the commit, as a checkout's files are
    for path in context.iterdir():
        os.utime(path, (later, later + len(path.name)))
    subprocess.run(
        ["docker", "buildx", "prune", "--all", "--force"],
        env=runner.env(),
        check=True,
        capture_output=True,
    )
    done = runner.run("build-sign-verify", "--context", str(context), *flags, env=env)
    assert done.returncode == 0, done.stderr
    return report_of(runner)


def test_a_re_run_of_the_same_commit_says_whether_it_made_the_same_digest(
    runner: Runner, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    first = rebuilt(runner, context, env, "--key", str(key))
    # BuildKit's provenance and the files' times make another digest: said, and signed anew.
    again = rebuilt(
        runner, context, {**env, "INVOKE_PROVENANCE_PROVENANCE": "true"}, "--key", str(key)
    )
    assert again["rebuild"] == {
        "previous_digest": first["build"]["digest"],  # type: ignore[index]
        "previous_run": first["run"]["id"],  # type: ignore[index]
        "same_digest": False,
        "note": again["rebuild"]["note"],  # type: ignore[index]
    }
    assert "provenance.reproducible" in again["rebuild"]["note"]  # type: ignore[index]
    assert again["verify"]["verified"] is True  # type: ignore[index]

    # Reproducible: the layer times rewritten to the commit's, buildx's provenance off.
    one = rebuilt(runner, context, env, "--key", str(key), "--reproducible")
    two = rebuilt(runner, context, env, "--key", str(key), "--reproducible")
    assert one["rebuild"]["same_digest"] is False  # type: ignore[index]  # its first
    assert two["rebuild"]["same_digest"] is True  # type: ignore[index]
    assert two["build"]["digest"] == one["build"]["digest"]  # type: ignore[index]


@pytest.mark.classic
def test_reproducible_needs_an_oci_export_and_says_so(
    runner: Runner,
    registry: Registry,
    context: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    if runner.testbed.engine != "classic":
        pytest.skip("the current engine exports OCI layouts: covered above")
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--key", str(key), "--reproducible", env=env
    )
    assert done.returncode == 2, done.stderr
    assert "needs an OCI export" in done.stderr
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])


def laptop_checkout(folder: Path) -> Path:
    """A context in a git repository cloned over SSH, committed."""
    make_context(folder)
    for args in (
        ["init", "-q"],
        ["remote", "add", "origin", "git@gitlab.example.com:team/app.git"],
        ["add", "-A"],
        ["commit", "-qm", "first"],
    ):
        subprocess.run(
            ["git", "-C", str(folder), *args],
            check=True,
            capture_output=True,
            env={**os.environ, **GIT},
        )
    return folder


def test_a_changed_tree_is_warned_about_recorded_and_refused_when_asked(
    runner: Runner, registry: Registry, tmp_path: Path, cosign: str
) -> None:
    context = laptop_checkout(tmp_path / "app")
    (context / "id.txt").write_text("edited, not committed")
    runner = Runner(runner.testbed, context, runner.sigstore)  # run in the checkout, as a user
    image = f"{runner.testbed.plain_registry}/metadata/app-{tmp_path.name[-6:].lower()}"
    env = {"INVOKE_PROVENANCE_COSIGN": cosign, **GIT}
    strict = runner.run(
        "build-sign-verify", "--context", str(context), "--image", image, "--require-clean", env=env
    )
    assert strict.returncode == 2, strict.stderr
    assert "tracked files differ from the commit: id.txt" in strict.stderr
    assert registry.holds_nothing(image)  # nothing pushed, nothing signed

    # Without the setting: built, with a warning, and the report records the change. The tags
    # come back from a dotenv's comma-joined IMAGE_TAGS; the user's label joins the CI's.
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--image",
        image,
        "--tag",
        "1.0,latest",
        "--label",
        "com.example.team=platform",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert "1 tracked file(s) differ from the commit: id.txt" in done.stderr
    source = report_of(runner)["source"]
    assert source["clean"] is False and source["changed"] == ["id.txt"]  # type: ignore[index]
    assert sorted(t for t in registry.tags(image) if not t.startswith("sha256-")) == [
        "1.0",
        "latest",
    ]
    labels = config_of(registry, f"{image}:1.0")["config"]["Labels"]  # type: ignore[index]
    assert labels["com.example.team"] == "platform"
    # The SSH remote is signed and labelled as its web address.
    assert labels["org.opencontainers.image.source"] == "https://gitlab.example.com/team/app"
