"""A build through a python-on-whales DockerClient handed in for the test bed's second engine.

The job's DOCKER_HOST names the test bed's engine; the client names the second one. The run
logs in to the registry through the client (in a private copy of its config, never in the
caller's folder), inspects the named builder through python-on-whales, builds on the second
engine only, and the image lands at the registry by digest, its tag on it. Real dockerd, buildx
and registry.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import DockerClient

from provenance_tasks import Built, Provenance
from tests.integration import pipelines
from tests.integration.conftest import Registry, builds_on, make_context, tool_path
from tests.testbed.bed import TestBed

pytestmark = pytest.mark.integration


def build_through(client: DockerClient, environ: dict[str, str], cwd: Path, **flags: Any) -> Built:
    """A build through the public API with `client` as the run's docker."""
    with Provenance.open({}, environ=environ, cwd=cwd, docker=client, **flags) as run:
        built = run.build()
    assert isinstance(built, Built)
    return built


def test_a_build_through_a_docker_client_handed_in_runs_on_its_engine(
    testbed: TestBed,
    registry: Registry,
    second_engine: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The job's environment: the test bed's engine, its CA, the tools; a GitLab pipeline.
    job = {**testbed.environ(), "PATH": tool_path(), "DOCKER_CONFIG": str(tmp_path / "job")}
    for name, value in job.items():
        monkeypatch.setenv(name, value)
    environ = {**os.environ, **pipelines.gitlab(testbed)}
    theirs = tmp_path / "theirs"  # the caller's own docker config folder
    theirs.mkdir()
    (theirs / "config.json").write_text("{}")
    client = DockerClient(host=second_engine, config=theirs, client_call=["docker"])
    context = make_context(tmp_path / "ctx")
    env = {**os.environ}
    on_second, on_first = builds_on(second_engine, env), builds_on(testbed.docker_host, env)

    built = build_through(client, environ, tmp_path, context=str(context), builder="default")

    # The second engine's BuildKit ran the build; the job's engine did not.
    assert builds_on(second_engine, env) == on_second + 1
    assert builds_on(testbed.docker_host, env) == on_first
    # At the registry by its digest, and its tag on it.
    assert built.digest.startswith("sha256:")
    assert registry.digest(f"{built.repository}@{built.digest}") == built.digest
    assert built.tags and all(
        registry.digest(f"{built.repository}:{tag}") == built.digest for tag in built.tags
    )
    # The login went to the run's private copy: the caller's client and folder are as they were.
    assert client.client_config.config == theirs and client.client_config.host == second_engine
    assert sorted(p.name for p in theirs.iterdir()) == ["config.json"]
    assert json.loads((theirs / "config.json").read_text()) == {}
