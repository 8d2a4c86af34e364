"""A laptop run on embedded defaults, and another repository's tasks.py reusing the collection."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import Registry, Runner, make_context


@pytest.mark.integration
@pytest.mark.classic
def test_local_run_makes_a_key_pair_on_first_use_and_verifies(
    runner: Runner, registry: Registry, context: Path, cosign: str
) -> None:
    image = f"{runner.testbed.plain_registry}/laptop/app"
    env = {"INVOKE_PROVENANCE_COSIGN": cosign}
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--image", image, "--no-tlog", env=env
    )
    assert done.returncode == 0, done.stderr
    key = runner.cwd / ".provenance" / "keys" / "cosign.key"
    assert str(key) in done.stderr  # the path is printed
    assert key.stat().st_mode & 0o777 == 0o600
    assert (key.parent / "cosign.pub").stat().st_mode & 0o777 == 0o600

    # Second run: same key, no new pair; the console script reads invoke.yaml in the cwd.
    before = key.read_bytes()
    (runner.cwd / "invoke.yaml").write_text(f"provenance:\n  image: {image}\n  tlog: false\n")
    again = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert again.returncode == 0, again.stderr
    assert key.read_bytes() == before
    assert "made a local signing key pair" not in again.stderr

    tag = (runner.cwd / "provenance.env").read_text().split("IMAGE_TAGS=")[1].split()[0]
    digest = registry.digest(f"{image}:{tag}")
    payloads = registry.payloads(
        cosign,
        f"{image}@{digest}",
        "--key",
        str(key.parent / "cosign.pub"),
        "--insecure-ignore-tlog",
    )
    assert any(p["optional"].get("tag") == tag for p in payloads)  # type: ignore[attr-defined]


CONSUMER_TASKS = '''
"""Another repository's tasks: the provenance collection under "image", plus a wrapped task."""
from invoke import Collection, task

from provenance_tasks.tasks import build_sign_verify
from provenance_tasks.tasks import ns as provenance


@task
def release(c):
    """Our release: the provenance job, with our team's annotation on every signature."""
    build_sign_verify(c, annotation=["com.example.team=platform, core"])
    print("released", c.config.provenance.image)


ns = Collection(release)
ns.add_collection(provenance, name="image")
ns.configure({"provenance": {"context": "app", "tlog": False}})
'''


@pytest.mark.integration
def test_a_consumer_tasks_py_imports_configures_and_wraps_the_collection(
    runner: Runner, registry: Registry, tmp_path: Path, cosign: str
) -> None:
    project = tmp_path / "consumer"
    project.mkdir()
    make_context(project / "app")
    (project / "tasks.py").write_text(CONSUMER_TASKS)
    image = f"{runner.testbed.plain_registry}/consumer/app"
    (project / "invoke.yaml").write_text(f"provenance:\n  image: {image}\n  tags: [release-1]\n")
    invoke = [sys.executable, "-m", "invoke"]
    env = runner.env({"INVOKE_PROVENANCE_COSIGN": cosign})

    listed = subprocess.run(
        [*invoke, "--list"], cwd=project, env=env, capture_output=True, text=True
    )
    assert listed.returncode == 0, listed.stderr
    assert "image.build-sign-verify" in listed.stdout and "release" in listed.stdout

    done = subprocess.run(
        [*invoke, "release"], cwd=project, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    assert f"released {image}" in done.stdout

    digest = registry.digest(f"{image}:release-1")
    pub = project / ".provenance" / "keys" / "cosign.pub"
    payloads = registry.payloads(
        cosign, f"{image}@{digest}", "--key", str(pub), "--insecure-ignore-tlog"
    )
    assert any(
        p["optional"].get("com.example.team") == "platform, core"  # type: ignore[attr-defined]
        and p["optional"].get("tag") == "release-1"  # type: ignore[attr-defined]
        for p in payloads
    ), payloads
    assert os.path.exists(project / "provenance-report.json")


STRUCTLOG_CONSUMER_TASKS = '''
"""A repository with its own structlog setup, running our task."""
import sys

import structlog
from invoke import Collection, task

from provenance_tasks.tasks import build_sign_verify

seen = []


def remember(logger, method_name, event_dict):
    seen.append(event_dict.get("event"))
    return event_dict


structlog.configure(
    processors=[remember, structlog.processors.KeyValueRenderer(key_order=["event"])],
    logger_factory=structlog.PrintLoggerFactory(sys.stdout),
)
before = structlog.get_config()


@task
def release(c, log_format="auto"):
    build_sign_verify(c, dry_run=True, log_format=log_format)
    after = structlog.get_config()
    kept = all(after[key] is before[key] for key in before)
    print("structlog config kept" if kept else "structlog config CHANGED")
    print(f"our events through the consumer's pipeline: {len(seen)}")


ns = Collection(release)
'''


@pytest.mark.integration
@pytest.mark.parametrize("log_format", ["auto", "json"])
def test_a_consumer_that_configured_structlog_keeps_its_configuration(
    runner: Runner, tmp_path: Path, log_format: str
) -> None:
    project = tmp_path / "consumer"
    make_context(project)
    (project / "tasks.py").write_text(STRUCTLOG_CONSUMER_TASKS)
    (project / "invoke.yaml").write_text("provenance:\n  image: 127.0.0.1:5999/consumer/app\n")
    done = subprocess.run(
        [sys.executable, "-m", "invoke", "release", "--log-format", log_format],
        cwd=project,
        env=runner.env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "structlog config kept" in done.stdout
    count = int(done.stdout.split("our events through the consumer's pipeline: ")[1].split()[0])
    assert count > 0
    # Our events were rendered by the consumer's renderer (key=value, event first), on its stream.
    assert "event='dry-run'" in done.stdout
