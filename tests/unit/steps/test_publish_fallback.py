"""Publish where a credential helper holds the login: each tag is copied by `imagetools create`
through the run's docker (the registry client's fallback), and the staging tag, which no tool
deletes, stays with one warning that says why. A fake docker logs what it was asked; the real
tools take this path in tests/integration/test_publish.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import structlog

from provenance_tasks.redaction import Redactor
from provenance_tasks.settings import resolve
from provenance_tasks.steps.build import BuildResult
from provenance_tasks.steps.publish import publish
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog

REPOSITORY = "registry.example.com/group/app"
DIGEST = "sha256:" + "ab" * 32


def test_a_credential_helpers_login_publishes_with_imagetools_and_keeps_the_staging_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    folder, calls = tmp_path / "bin", tmp_path / "calls"
    folder.mkdir()
    (folder / "docker").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (folder / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    config = tmp_path / "docker-config"
    config.mkdir()
    (config / "config.json").write_text('{"credsStore": "desktop"}')
    settings = resolve(None, {"docker_config": str(config), "buildx": "docker"})
    run = Run.start(settings, {"HOME": str(tmp_path)}, cwd=tmp_path)
    tools, log = Tools(run), RunLog({}, "console", None, Redactor([]))
    result = BuildResult(REPOSITORY, DIGEST, ("v1", "latest"), staging_tag="provenance-staging-1")
    done: list[str] = []

    with structlog.testing.capture_logs() as logs:
        assert publish(run, tools, log, result, done) == ("v1", "latest")

    assert done == ["v1", "latest"]
    copies = [f"imagetools create --prefer-index=false --tag {REPOSITORY}:{tag}" for tag in done]
    assert calls.read_text().splitlines() == [
        f"--config {config} buildx {copy} {REPOSITORY}@{DIGEST}" for copy in copies
    ]
    (warning,) = [e for e in logs if e["log_level"] == "warning"]
    assert warning["event"].startswith(
        f"the staging tag provenance-staging-1 stays on {REPOSITORY}: registry.example.com;"
    )
