"""A DockerClient handed to the run's tools: it is the run's engine and config, the run's logins
go into a private copy of it (never into the caller's config), cosign is told the same config,
each image of a set uses it, and a setting that names another engine is bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from python_on_whales import DockerClient

from provenance_tasks.errors import InputError
from provenance_tasks.settings import resolve
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.sets.meeting import Meeting
from provenance_tasks.steps.sets.tools import ImageTools

SECOND = "unix:///run/second-engine.sock"


@pytest.fixture(autouse=True)
def _not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)


def make_run(tmp_path: Path, **flags: Any) -> Run:
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "DOCKER_CONFIG": str(tmp_path / "job")}
    return Run.start(resolve(None, flags), environ=env, cwd=tmp_path)


def their_config(tmp_path: Path) -> Path:
    """The caller's own docker config: a builder, a context, a plugin and a login of theirs."""
    theirs = tmp_path / "theirs"
    for folder in ("buildx/instances", "contexts/meta", "cli-plugins"):
        (theirs / folder).mkdir(parents=True)
    config = {"auths": {"r.test": {"auth": "dXNlcjpwYXNz"}}, "currentContext": "builders"}
    (theirs / "config.json").write_text(json.dumps(config))
    return theirs


def test_the_client_handed_in_is_the_runs_engine_and_config(tmp_path: Path) -> None:
    theirs = their_config(tmp_path)
    client = DockerClient(host=SECOND, config=theirs, client_call=["docker"])
    tools = Tools(make_run(tmp_path), docker_client=client)
    assert tools.docker.client is client
    assert tools.docker.environ() == {"DOCKER_CONFIG": str(theirs), "DOCKER_HOST": SECOND}
    assert tools.docker_config == theirs  # what the registry's HTTP calls read logins from
    assert tools.cosign_environment()["DOCKER_CONFIG"] == str(theirs)


def test_a_login_goes_into_a_private_copy_never_into_the_callers_config(tmp_path: Path) -> None:
    theirs = their_config(tmp_path)
    before = sorted(p.name for p in theirs.iterdir()), (theirs / "config.json").read_text()
    client = DockerClient(host=SECOND, config=theirs, client_call=["docker"])
    tools = Tools(make_run(tmp_path), docker_client=client)
    tools.docker  # noqa: B018 - made before the login, as preflight makes it
    private = tools.private_docker_config()
    try:
        assert private != theirs
        run_client = tools.docker.client
        assert run_client is not client and run_client.client_config.config == private
        assert run_client.client_config.host == SECOND  # the same engine
        assert client.client_config.config == theirs  # the caller's client is as it was
        assert tools.docker.environ()["DOCKER_CONFIG"] == str(private)
        assert tools.cosign_environment()["DOCKER_CONFIG"] == str(private)
        # Their builders, contexts and plugins are seen from the private folder; their logins not.
        for name in ("buildx", "contexts", "cli-plugins"):
            assert (private / name).resolve() == (theirs / name).resolve()
        assert json.loads((private / "config.json").read_text()) == {"currentContext": "builders"}
    finally:
        tools.close()
    assert not private.exists()
    assert (
        sorted(p.name for p in theirs.iterdir()),
        (theirs / "config.json").read_text(),
    ) == before


def test_each_image_of_a_set_builds_on_the_client_handed_in(tmp_path: Path) -> None:
    client = DockerClient(host=SECOND, client_call=["docker"])
    shared = Tools(make_run(tmp_path), docker_client=client)
    try:
        folder = shared.private_docker_config()
        image = ImageTools(
            shared.run.for_image("api", shared.run.settings, None), shared, meeting=Meeting(1, 1)
        )
        assert image.docker.client.client_config.host == SECOND
        assert image.docker.config_dir == folder and image.private_docker_config() == folder
    finally:
        shared.close()


def test_a_setting_that_names_another_engine_is_bad_input(tmp_path: Path) -> None:
    client = DockerClient(host=SECOND, client_call=["docker"])
    with pytest.raises(InputError, match=r"provenance\.docker_host is unix:///elsewhere\.sock"):
        Tools(make_run(tmp_path, docker_host="unix:///elsewhere.sock"), docker_client=client)


def test_settings_fill_in_what_the_client_leaves_unset(tmp_path: Path) -> None:
    mine = tmp_path / "mine"
    tools = Tools(
        make_run(tmp_path, docker_host=SECOND, docker_config=str(mine)),
        docker_client=DockerClient(client_call=["docker"]),
    )
    config = tools.docker.client.client_config
    assert (config.host, config.config) == (SECOND, mine)
