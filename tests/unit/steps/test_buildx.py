"""buildx for a step: a build that BuildKit fails with a lost snapshot is built again without the
cache, once; any other failure is retried (or not) as it was. The stderr is the real one, kept in
tests/unit/fixtures/stderr/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.adapters.docker import BuildRequest
from provenance_tasks.errors import CommandFailed
from provenance_tasks.retry import RetryPolicy
from provenance_tasks.steps.buildx import buildx

RACE = (
    Path(__file__).parents[1] / "fixtures" / "stderr" / "buildx-build-snapshot-race.txt"
).read_text()


class FakeDocker:
    """Fails with each stderr in turn, recording the request of every call."""

    def __init__(self, *stderrs: str) -> None:
        self.left, self.asked = list(stderrs), list[BuildRequest]()

    def build(self, request: BuildRequest, *, on_line: Any = None) -> list[str]:
        self.asked.append(request)
        if self.left:
            raise CommandFailed("docker-buildx", ["docker-buildx", "build"], 1, self.left.pop(0))
        return ["docker-buildx", "build"]


class FakeLog:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, event: str, **_: Any) -> None:
        self.warnings.append(event)

    def bind(self, **_: Any) -> None:
        pass

    def tool_output(self, _: str) -> None:
        return None


class FakeTools:
    def __init__(self, docker: FakeDocker) -> None:
        self.docker = docker
        self.retry_policy = RetryPolicy(wait_s=0.0, jitter=lambda: 0.0)


def build(*stderrs: str) -> tuple[FakeDocker, FakeLog]:
    docker, log = FakeDocker(*stderrs), FakeLog()
    request = BuildRequest(context=Path("ctx"), dockerfile=None, tags=[])
    buildx(FakeTools(docker), log, request, "build app")  # type: ignore[arg-type]
    return docker, log


def test_a_lost_snapshot_is_built_again_without_the_cache() -> None:
    docker, log = build(RACE)
    assert [r.no_cache for r in docker.asked] == [False, True]
    assert any("BuildKit lost a cached snapshot" in w for w in log.warnings)


def test_without_the_cache_a_lost_snapshot_again_is_retried_as_it_is() -> None:
    docker, _ = build(RACE, RACE)
    assert [r.no_cache for r in docker.asked] == [False, True, True]


def test_another_transient_failure_keeps_the_cache() -> None:
    docker, log = build("failed to push: 503 Service Unavailable")
    assert [r.no_cache for r in docker.asked] == [False, False]
    assert not any("snapshot" in w for w in log.warnings)


def test_a_broken_dockerfile_is_not_retried() -> None:
    with pytest.raises(CommandFailed):
        build('ERROR: failed to compute cache key: "/nothing-here": not found')
