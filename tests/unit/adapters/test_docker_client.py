"""The Docker adapter over a python-on-whales DockerClient: the command lines it builds from the
client's `docker_cmd` (handed in or made from the settings), the environment the buildx plugin
run directly gets from it, and a named builder inspected through python-on-whales. Where a
command runs, it is a fake docker on PATH that answers as the real one does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from provenance_tasks.adapters.docker import BuildRequest, Docker
from provenance_tasks.errors import InputError
from provenance_tasks.redaction import Redactor


def request(tmp_path: Path) -> BuildRequest:
    return BuildRequest(context=tmp_path, dockerfile=None, tags=(), layout=tmp_path / "layout")


def plugin(tmp_path: Path) -> str:
    binary = tmp_path / "plugins" / "docker-buildx"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    return str(binary)


def test_the_runs_own_client_is_made_when_first_needed_from_the_settings(tmp_path: Path) -> None:
    docker = Docker(redactor=Redactor(), config_dir=tmp_path / "cfg", host="unix:///e.sock")
    assert docker._client is None  # a run that only signs never makes one
    assert docker.build_argv(request(tmp_path))[:6] == [
        "docker",
        "--config",
        str(tmp_path / "cfg"),
        "--host",
        "unix:///e.sock",
        "buildx",
    ]
    assert docker.client.client_config.host == "unix:///e.sock"
    assert docker.client is docker.client  # one client for the run


def test_a_client_handed_in_gives_the_command_line_and_the_environment(tmp_path: Path) -> None:
    theirs = DockerClient(host="ssh://me@builder", client_call=["sudo", "docker"])
    docker = Docker(redactor=Redactor(), client=theirs)
    assert docker.client is theirs
    assert docker.login_argv("r.test", "me") == [
        "sudo",
        "docker",
        "--host",
        "ssh://me@builder",
        "login",
        "--username",
        "me",
        "--password-stdin",
        "r.test",
    ]
    assert docker.environ() == {"DOCKER_HOST": "ssh://me@builder"}  # what cosign is told
    assert docker.binary == "sudo"


def test_the_runs_logins_go_to_a_copy_of_the_client_handed_in(tmp_path: Path) -> None:
    theirs = DockerClient(config=tmp_path / "theirs", context="remote", client_call=["docker"])
    docker = Docker(redactor=Redactor(), client=theirs, config_dir=tmp_path / "run")
    assert docker.client is not theirs and theirs.client_config.config == tmp_path / "theirs"
    assert docker.login_argv("r.test", "me")[:5] == [
        "docker",
        "--config",
        str(tmp_path / "run"),
        "--context",
        "remote",
    ]
    assert docker.environ() == {"DOCKER_CONFIG": str(tmp_path / "run"), "DOCKER_CONTEXT": "remote"}


def test_the_plugin_run_directly_is_told_the_clients_engine_by_its_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONTEXT", "the-jobs")
    buildx = plugin(tmp_path)
    theirs = DockerClient(host="unix:///second.sock", client_call=["docker"])
    docker = Docker(redactor=Redactor(), client=theirs, config_dir=tmp_path / "run", buildx=buildx)
    assert docker.build_argv(request(tmp_path))[:2] == [buildx, "build"]
    env = docker._env()
    assert env["DOCKER_HOST"] == "unix:///second.sock"
    assert env["DOCKER_CONFIG"] == str(tmp_path / "run")
    assert docker.shown_environ() == {
        "DOCKER_CONFIG": str(tmp_path / "run"),
        "DOCKER_HOST": "unix:///second.sock",
    }
    # Through docker, its flags say it all in the argv: a dry run prints nothing in front.
    assert Docker(redactor=Redactor(), client=theirs).shown_environ() == {}


def test_a_plugin_named_for_a_client_it_cannot_be_told_about_is_bad_input(tmp_path: Path) -> None:
    theirs = DockerClient(tlsverify=True, tlscacert=tmp_path / "ca.pem", client_call=["docker"])
    with pytest.raises(InputError, match=r"provenance\.buildx runs"):
        Docker(redactor=Redactor(), client=theirs, buildx=plugin(tmp_path))


def fake_docker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, builders: list[str]) -> Path:
    """A docker whose buildx knows `builders`: `buildx inspect NAME` and `buildx ls --format`
    answer as buildx 0.29 does; the argv of every call is logged."""
    folder = tmp_path / "bin"
    folder.mkdir()
    log = tmp_path / "argv.log"
    listed = "\n".join(json.dumps({"Name": b, "Driver": "docker-container"}) for b in builders)
    (tmp_path / "ls.json").write_text(listed + "\n")
    script = f"""#!/bin/sh
echo "$*" >> {log}
for last; do :; done
case "$*" in
  *"buildx inspect"*)
    case " {" ".join(builders)} " in
      *" $last "*) printf 'Name:          %s\\nDriver:        docker-container\\n' "$last" ;;
      *) echo "ERROR: no builder \\"$last\\" found" >&2; exit 1 ;;
    esac ;;
  *"buildx ls"*) cat {tmp_path / "ls.json"} ;;
  *) echo "unexpected: $*" >&2; exit 1 ;;
esac
"""
    (folder / "docker").write_text(script)
    (folder / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:/usr/bin:/bin")
    return log


def test_a_named_builder_is_inspected_through_python_on_whales(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = fake_docker(tmp_path, monkeypatch, ["ci", "default"])
    Docker(redactor=Redactor(), config_dir=tmp_path / "cfg").check_builder("ci")
    calls = log.read_text().splitlines()
    assert calls == [
        f"--config {tmp_path / 'cfg'} buildx inspect ci",
        f"--config {tmp_path / 'cfg'} buildx ls --format {{{{json . }}}}",
    ]


def test_a_missing_builder_is_bad_input_with_python_on_whales_error_as_its_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_docker(tmp_path, monkeypatch, ["default"])
    with pytest.raises(InputError) as caught:
        Docker(redactor=Redactor()).check_builder("ci")
    assert caught.value.message == "no buildx builder named 'ci': ERROR: no builder \"ci\" found"
    assert isinstance(caught.value.__cause__, DockerException)
    assert caught.value.exit_code == 2


def test_the_clients_own_docker_must_be_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    theirs = DockerClient(client_call=["docker-of-theirs"])
    with pytest.raises(InputError, match="docker-of-theirs is not installed"):
        Docker(redactor=Redactor(), client=theirs).check_present()
