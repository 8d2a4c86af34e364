"""A docker context names the engine: docker runs with --context, buildx with DOCKER_CONTEXT and
without a DOCKER_HOST that would win over it, and buildx's "switch to context" error becomes bad
input that names the setting to use. No docker runs: process.run is replaced by a fake."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.adapters import docker as docker_module
from provenance_tasks.adapters.docker import BuildRequest, Docker
from provenance_tasks.errors import CommandFailed, InputError
from provenance_tasks.redaction import Redactor

SWITCH = 'ERROR: use `docker --context=remote buildx` to switch to context "remote"'
SWITCH_OLD = "ERROR: use `docker --context=build-box buildx` to switch to context build-box"


@pytest.fixture(autouse=True)
def _a_job_with_its_own_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://job-engine:2375")
    monkeypatch.delenv("DOCKER_CONTEXT", raising=False)


class FakeRun:
    """process.run: records each call, and fails with `stderr` when given."""

    def __init__(self, stderr: str | None = None) -> None:
        self.stderr = stderr
        self.envs: list[dict[str, str]] = []
        self.argvs: list[list[str]] = []

    def __call__(
        self,
        argv: Sequence[str],
        *,
        redactor: Redactor,
        env: Mapping[str, str] | None = None,
        **_: Any,
    ) -> Any:
        self.argvs.append(list(argv))
        self.envs.append(dict(env or {}))
        if self.stderr is not None:
            raise CommandFailed("docker", argv, 1, self.stderr, streamed=True)
        return None


def build(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake: FakeRun,
    *,
    context: str | None = None,
    host: str | None = None,
    builder: str | None = None,
) -> list[str]:
    monkeypatch.setattr(docker_module, "run", fake)
    client = Docker(redactor=Redactor(), context=context, host=host)
    return client.build(
        BuildRequest(context=tmp_path, dockerfile=None, tags=["r.test/app:v1"], builder=builder)
    )


# --- the environment docker runs in -------------------------------------------------------------


def test_a_context_is_set_and_the_jobs_docker_host_dropped() -> None:
    env = Docker(redactor=Redactor(), context="remote")._env()
    assert env["DOCKER_CONTEXT"] == "remote"
    assert "DOCKER_HOST" not in env
    assert env["PATH"]  # the rest of the job's environment stays


def test_a_host_is_set_and_no_context() -> None:
    env = Docker(redactor=Redactor(), host="ssh://me@engine")._env()
    assert env["DOCKER_HOST"] == "ssh://me@engine" and "DOCKER_CONTEXT" not in env


def test_without_either_the_jobs_docker_host_stays() -> None:
    assert Docker(redactor=Redactor())._env()["DOCKER_HOST"] == "tcp://job-engine:2375"


def test_other_tools_are_told_the_context_too() -> None:
    env = Docker(redactor=Redactor(), context="remote", config_dir=Path("/x")).environ()
    assert env == {"DOCKER_CONFIG": "/x", "DOCKER_CONTEXT": "remote"}


def test_the_build_runs_in_the_contexts_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = FakeRun()
    build(tmp_path, monkeypatch, fake, context="remote")
    (env,) = fake.envs
    assert env["DOCKER_CONTEXT"] == "remote" and "DOCKER_HOST" not in env
    # docker's own flag too, as python-on-whales' docker_cmd says it: it beats DOCKER_HOST.
    assert fake.argvs[0][:5] == ["docker", "--context", "remote", "buildx", "build"]


# --- buildx's "switch to context" ---------------------------------------------------------------


@pytest.mark.parametrize(("stderr", "context"), [(SWITCH, "remote"), (SWITCH_OLD, "build-box")])
def test_a_builder_of_another_context_is_bad_input_naming_the_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stderr: str, context: str
) -> None:
    with pytest.raises(InputError) as caught:
        build(
            tmp_path,
            monkeypatch,
            FakeRun(f"#0 building with {context}\n{stderr}\n"),
            builder=context,
        )
    assert caught.value.exit_code == 2
    assert caught.value.message == (
        f"the buildx builder {context!r} is the engine of docker context {context!r}"
    )
    assert caught.value.hint == f"set provenance.docker_context to {context} (and keep --builder)"


def test_another_build_failure_with_a_builder_stands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failure = 'ERROR: failed to solve: process "/bin/sh -c make" did not complete successfully'
    with pytest.raises(CommandFailed) as caught:
        build(tmp_path, monkeypatch, FakeRun(failure), builder="remote")
    assert caught.value.stderr == failure
