"""The tools of a run of many images: work done once for every image (`Tools.once`), what each
image has of its own (a cancel, a folder, a docker client) and what it shares, the run of one
image (`Run.for_image`), and the private docker config that still sees the user's engines."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.errors import ToolError
from provenance_tasks.settings import resolve
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.sets.meeting import Meeting
from provenance_tasks.steps.sets.tools import ImageTools
from tests.unit.gitlab_env import GITLAB_ENV, SHA

# No login and no job token: the tools of a run that logs in to nothing.
NO_LOGIN = ("CI_COMMIT_SHORT_SHA", "CI_JOB_TOKEN", "CI_REGISTRY", "CI_REGISTRY_USER")
GITLAB_ENV = {k: v for k, v in GITLAB_ENV.items() if k not in NO_LOGIN}
TITLE = "org.opencontainers.image.title"


@pytest.fixture(autouse=True)
def _not_a_git_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    for name in ("GIT_DIR", "GIT_WORK_TREE"):
        monkeypatch.delenv(name, raising=False)


def make_run(tmp_path: Path, environ: dict[str, str] | None = None, **flags: Any) -> Run:
    env = {
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
        "DOCKER_CONFIG": str(tmp_path / "users-docker"),
        **(environ or {}),
    }
    return Run.start(resolve(None, flags), environ=env, cwd=tmp_path)


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Tools]:
    tools = Tools(make_run(tmp_path))
    yield tools
    tools.close()


def image(tools: Tools, name: str) -> ImageTools:
    return ImageTools(
        tools.run.for_image(name, tools.run.settings, None), tools, meeting=Meeting(1, 1)
    )


# --- Tools.once ---------------------------------------------------------------------------------


def test_once_does_the_work_once_for_callers_in_many_threads(shared: Tools) -> None:
    calls: list[int] = []
    release = threading.Event()

    def probe() -> object:
        calls.append(1)
        release.wait(5)  # still working while the other threads ask
        return object()

    answers: list[object] = []
    threads = [
        threading.Thread(target=lambda: answers.append(shared.once(("probe",), probe)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.1)
    release.set()
    for thread in threads:
        thread.join(5)
    assert len(calls) == 1
    assert len(answers) == 8 and all(answer is answers[0] for answer in answers)


def test_once_raises_the_works_error_again_for_every_caller(shared: Tools) -> None:
    calls: list[int] = []

    def login() -> str:
        calls.append(1)
        raise ToolError("the registry refused the login")

    caught = []
    for _ in range(3):
        with pytest.raises(ToolError) as error:
            shared.once(("login", "r.test"), login)
        caught.append(error.value)
    assert len(calls) == 1
    assert all(e.message == "the registry refused the login" for e in caught)


def test_once_is_per_key(shared: Tools) -> None:
    calls: list[str] = []

    def work(key: str) -> str:
        calls.append(key)
        return key.upper()

    assert shared.once(("probe", "a"), lambda: work("a")) == "A"
    assert shared.once(("probe", "b"), lambda: work("b")) == "B"
    assert shared.once(("probe", "a"), lambda: work("a")) == "A"
    assert calls == ["a", "b"]


# --- ImageTools ---------------------------------------------------------------------------------


def test_every_image_shares_the_runs_once(shared: Tools) -> None:
    a, b = image(shared, "svc-a"), image(shared, "svc-b")
    asked: list[str] = []

    def check(by: str) -> str:
        asked.append(by)
        return f"checked by {by}"

    assert a.once(("key-check",), lambda: check("a")) == "checked by a"
    assert b.once(("key-check",), lambda: check("b")) == "checked by a"
    assert shared.once(("key-check",), lambda: "by the run") == "checked by a"
    assert asked == ["a"]


def test_each_image_has_its_own_cancel_and_docker_client(shared: Tools) -> None:
    a, b = image(shared, "svc-a"), image(shared, "svc-b")
    a.cancelled.set()
    assert not b.cancelled.is_set() and not shared.cancelled.is_set()
    assert a.docker is not b.docker
    assert a.docker.cancel is a.cancelled and b.docker.cancel is b.cancelled


def test_each_image_has_its_own_private_folder_in_the_runs(shared: Tools) -> None:
    a, b = image(shared, "svc-a"), image(shared, "svc-b")
    folder = a.private_folder()
    assert folder == shared.private_folder() / "images" / "svc-a"
    assert b.private_folder() == shared.private_folder() / "images" / "svc-b"
    assert folder.is_dir() and stat.S_IMODE(folder.stat().st_mode) == 0o700
    (folder / "statement.json").write_text("{}")
    assert not (b.private_folder() / "statement.json").exists()
    a.close()  # an image removes nothing: the run's tools do
    assert (folder / "statement.json").exists()


def test_the_runs_folder_is_removed_with_every_images_folder(tmp_path: Path) -> None:
    tools = Tools(make_run(tmp_path))
    folder = image(tools, "svc-a").private_folder()
    run_folder = tools.private_folder()
    tools.close()
    assert not folder.exists() and not run_folder.exists()


def test_images_share_the_indexes_and_the_retry_policys_gate(shared: Tools) -> None:
    a, b = image(shared, "svc-a"), image(shared, "svc-b")
    assert a.indexes is shared.indexes and b.indexes is shared.indexes
    assert a.retry_policy is b.retry_policy is shared.retry_policy
    assert a.retry_policy.gate is not None  # a 429 seen by one image pauses the others


def test_images_use_the_runs_docker_config(shared: Tools) -> None:
    folder = shared.private_docker_config()  # made before the images start
    a = image(shared, "svc-a")
    assert a.docker_config == folder and a.private_docker_config() == folder
    assert a.docker.config_dir == folder


# --- Run.for_image ------------------------------------------------------------------------------


def test_the_run_of_one_image_is_titled_by_its_name_under_the_ci_repository(
    tmp_path: Path,
) -> None:
    run = Run.start(resolve(None, {}), environ=GITLAB_ENV, cwd=tmp_path)
    settings = replace(run.settings, context="services/web")
    one = run.for_image("web", settings, None)
    assert one.ci.labels[TITLE] == "web"
    assert one.ci.labels["org.opencontainers.image.revision"] == SHA  # the others stay
    assert one.ci.default_repository == "registry.example.com/group/proj/web"
    assert (one.image_name, one.settings, one.id, one.cwd) == ("web", settings, run.id, run.cwd)
    assert run.ci.labels[TITLE] == "proj" and run.image_name is None  # the run's is untouched
    assert run.ci.default_repository == "registry.example.com/group/proj"


def test_without_a_ci_repository_an_image_has_none(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    bare = replace(run, ci=replace(run.ci, default_repository=None))
    assert bare.for_image("web", bare.settings, None).ci.default_repository is None


# --- the private docker config ------------------------------------------------------------------


def users_config(tmp_path: Path, config: Any = None) -> Path:
    users = tmp_path / "users-docker"
    (users / "buildx" / "instances").mkdir(parents=True)
    (users / "buildx" / "instances" / "remote-builder").write_text("{}")
    (users / "contexts" / "meta").mkdir(parents=True)
    if config is not None:
        text = config if isinstance(config, str) else json.dumps(config)
        (users / "config.json").write_text(text)
    return users


def test_the_private_config_links_the_users_builders_and_contexts(tmp_path: Path) -> None:
    users = users_config(
        tmp_path, {"auths": {"r.test": {"auth": "dXNlcjpwYXNz"}}, "currentContext": "remote"}
    )
    tools = Tools(make_run(tmp_path))
    folder = tools.private_docker_config()
    try:
        assert folder != users and stat.S_IMODE(folder.stat().st_mode) == 0o700
        for name in ("buildx", "contexts"):
            assert (folder / name).is_symlink()
            assert (folder / name).resolve() == (users / name).resolve()
        assert (folder / "buildx" / "instances" / "remote-builder").is_file()
        # the current context is kept, the user's logins are not
        assert json.loads((folder / "config.json").read_text()) == {"currentContext": "remote"}
        assert tools.private_docker_config() == folder  # asked again: the same, linked once
    finally:
        tools.close()
    assert not folder.exists()
    assert (users / "buildx" / "instances" / "remote-builder").is_file()  # theirs survives


@pytest.mark.parametrize("config", [{"currentContext": "default"}, {"auths": {}}, "not json", "[]"])
def test_no_current_context_is_written_for_the_default_or_an_unreadable_config(
    tmp_path: Path, config: Any
) -> None:
    users_config(tmp_path, config)
    tools = Tools(make_run(tmp_path))
    try:
        folder = tools.private_docker_config()
        assert not (folder / "config.json").exists()
        assert (folder / "buildx").is_symlink() and (folder / "contexts").is_symlink()
    finally:
        tools.close()


def test_a_user_without_builders_or_contexts_gets_an_empty_config(tmp_path: Path) -> None:
    tools = Tools(make_run(tmp_path))  # DOCKER_CONFIG names a folder that doesn't exist
    try:
        assert list(tools.private_docker_config().iterdir()) == []
    finally:
        tools.close()


def test_a_configured_docker_config_is_used_as_it_is_and_kept(tmp_path: Path) -> None:
    users_config(tmp_path, {"currentContext": "remote"})
    mine = tmp_path / "job-docker"
    tools = Tools(make_run(tmp_path, docker_config=str(mine)))
    assert tools.private_docker_config() == mine
    assert list(mine.iterdir()) == []  # nothing linked into a folder the user named
    tools.close()
    assert mine.is_dir()


def test_a_docker_client_made_before_the_config_sees_it(shared: Tools) -> None:
    assert shared.docker.config_dir is None
    folder = shared.private_docker_config()
    assert shared.docker.config_dir == folder
    assert shared.docker.environ()["DOCKER_CONFIG"] == str(folder)


def test_provenance_buildx_names_the_plugin_or_hands_buildx_to_docker(tmp_path: Path) -> None:
    from provenance_tasks.errors import InputError

    plugin = tmp_path / "my-buildx"
    plugin.write_text("#!/bin/sh\n")
    plugin.chmod(0o755)
    assert Tools(make_run(tmp_path, buildx=str(plugin))).docker.buildx == str(plugin)
    # docker: the docker on PATH runs buildx (a wrapper, sudo), as `docker buildx`.
    through = Tools(make_run(tmp_path, buildx="docker")).docker
    assert through.buildx is None and through._buildx_argv() == ["docker", "buildx"]
    with pytest.raises(InputError, match="no executable file at"):
        Tools(make_run(tmp_path, buildx=str(tmp_path / "absent"))).docker  # noqa: B018


def test_a_login_after_the_clients_were_made_reaches_docker_the_registry_and_cosign(
    tmp_path: Path,
) -> None:
    from provenance_tasks.adapters.cosign import Cosign
    from provenance_tasks.redaction import Redactor

    tools = Tools(make_run(tmp_path))
    probed = Cosign("cosign", 3, Redactor([]), {"TUF_ROOT": "/tuf"})
    tools.__dict__["probed_cosign"] = probed  # probed before the login
    docker, registry = tools.docker, tools.registry
    assert tools.cosign is probed and docker.config_dir is None
    folder = tools.private_docker_config()
    try:
        assert tools.docker is not docker and tools.docker.config_dir == folder
        assert tools.registry is not registry and tools.docker is tools.docker  # made once more
        assert tools.cosign.env == {"TUF_ROOT": "/tuf", "DOCKER_CONFIG": str(folder)}
        assert tools.cosign.major == 3  # not probed again
    finally:
        tools.close()
