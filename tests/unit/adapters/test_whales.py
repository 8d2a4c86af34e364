"""python-on-whales at the edge: the command line its DockerClient gives, a client handed in and
completed by the run, its errors as ours (redacted, classified for retries, the DockerException
kept as the cause), and its debug print kept off. Where a command runs, it is a fake docker on
PATH: these are tests of construction and parsing, not of docker."""

from __future__ import annotations

import os
import shlex
import threading
from pathlib import Path

import pytest
from python_on_whales import DockerClient
from python_on_whales.exceptions import DockerException

from provenance_tasks.adapters import whales
from provenance_tasks.errors import CommandFailed, InputError, ToolError
from provenance_tasks.redaction import MASK, Redactor
from provenance_tasks.retry import RetryPolicy, with_retries

SECRET = "tok-3f9a1c77e2b54d1a"


def fake_docker(folder: Path, script: str) -> Path:
    """A docker on PATH that answers with `script` (sh), for the parsing of its words only."""
    folder.mkdir(parents=True, exist_ok=True)
    docker = folder / "docker"
    docker.write_text(f"#!/bin/sh\n{script}\n")
    docker.chmod(0o755)
    return folder


# --- the command line ---------------------------------------------------------------------------


def test_the_argv_is_the_clients_docker_cmd_with_its_binary_as_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "no-docker-here"))  # a dry run needs none
    client = DockerClient(
        config=tmp_path / "cfg", host="ssh://me@engine", tlsverify=True, client_call=["docker"]
    )
    assert whales.docker_argv(client) == [
        "docker",
        "--config",
        str(tmp_path / "cfg"),
        "--host",
        "ssh://me@engine",
        "--tlsverify",
    ]
    wrapped = DockerClient(context="remote", client_call=["sudo", "-n", "docker"])
    assert whales.docker_argv(wrapped) == ["sudo", "-n", "docker", "--context", "remote"]


def test_where_docker_is_installed_the_argv_is_docker_cmd_itself_less_the_lookup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(fake_docker(tmp_path / "bin", "exit 0")))
    client = DockerClient(config=tmp_path / "cfg", context="remote", client_call=["docker"])
    resolved = [str(word) for word in client.client_config.docker_cmd]
    assert resolved[0] == str(tmp_path / "bin" / "docker")
    assert whales.docker_argv(client) == ["docker", *resolved[1:]]


def test_the_runs_own_client_names_a_context_over_a_host() -> None:
    client = whales.make_client(config=None, host="tcp://job:2375", context="remote")
    assert client.client_config.context == "remote" and client.client_config.host is None
    assert whales.docker_argv(client) == ["docker", "--context", "remote"]


def test_the_plugin_runs_directly_only_for_what_its_environment_can_say() -> None:
    assert whales.plugin_can_run(None)  # the run's own client: settings say no more
    assert whales.plugin_can_run(DockerClient(host="unix:///x.sock", client_call=["docker"]))
    assert not whales.plugin_can_run(DockerClient(tlscacert="/ca.pem", client_call=["docker"]))
    assert not whales.plugin_can_run(DockerClient(client_call=["podman"]))


# --- a client handed in -------------------------------------------------------------------------


def test_the_runs_config_goes_into_a_copy_never_into_the_callers_client(tmp_path: Path) -> None:
    theirs = DockerClient(config=tmp_path / "theirs", host="unix:///e.sock", client_call=["docker"])
    copy = whales.completed(theirs, config=tmp_path / "run", host=None, context=None)
    assert copy is not theirs
    assert copy.client_config.config == tmp_path / "run"
    assert copy.client_config.host == "unix:///e.sock"  # the same engine
    assert theirs.client_config.config == tmp_path / "theirs"  # left as it was
    assert whales.completed(theirs, config=None, host=None, context=None) is theirs


def test_settings_name_the_engine_only_where_the_client_names_none() -> None:
    bare = DockerClient(client_call=["docker"])
    assert whales.completed(bare, config=None, host="tcp://e:2375", context=None).client_config.host
    named = DockerClient(host="unix:///mine.sock", client_call=["docker"])
    kept = whales.completed(named, config=None, host=None, context="remote")
    assert kept is named


@pytest.mark.parametrize(
    ("settings", "needle"),
    [
        ({"host": "unix:///other.sock"}, "provenance.docker_host is unix:///other.sock"),
        ({"config": "/elsewhere"}, "provenance.docker_config is /elsewhere"),
        ({"context": "remote"}, "a docker host and a docker context"),
    ],
)
def test_a_setting_that_contradicts_the_client_is_bad_input(
    settings: dict[str, str], needle: str
) -> None:
    client = DockerClient(host="unix:///mine.sock", config="/mine", client_call=["docker"])
    given = {"host": None, "context": None, "config": None, **settings}
    with pytest.raises(InputError, match=needle):
        whales.handed_in(client, **given)


def test_a_setting_that_agrees_with_the_client_is_fine() -> None:
    client = DockerClient(host="unix:///mine.sock", config="/mine", client_call=["docker"])
    # The same checks as above, which raise InputError on a disagreement: here none.
    whales.handed_in(client, host="unix:///mine.sock", context=None, config="/mine")


# --- its errors as ours -------------------------------------------------------------------------


def docker_exception(stderr: str, code: int = 1) -> DockerException:
    argv = ["/usr/bin/docker", "buildx", "imagetools", "inspect", f"r.test/app:{SECRET}"]
    return DockerException(argv, code, f"out {SECRET}".encode(), stderr.encode())


def raising(exc: BaseException) -> object:
    raise exc


def test_a_failed_command_is_command_failed_redacted_with_its_cause_redacted_too() -> None:
    error = docker_exception(f"ERROR: unauthorized for {SECRET}")
    with pytest.raises(CommandFailed) as caught:
        whales.call(Redactor([SECRET]), lambda: raising(error))
    failed = caught.value
    assert failed.tool == "docker" and failed.returncode == 1
    assert failed.stderr == f"ERROR: unauthorized for {MASK}"
    assert SECRET not in failed.command and SECRET not in str(failed)
    cause = failed.__cause__
    assert cause is error  # python-on-whales' own exception, as the cause
    assert SECRET not in str(cause) and SECRET not in " ".join(error.docker_command)
    assert SECRET not in (error.stdout or "") + (error.stderr or "")
    assert failed.cause.kind == "permanent"


@pytest.mark.parametrize(
    ("stderr", "kind"),
    [
        ("ERROR: unexpected status from HEAD request: 503 Service Unavailable", "transient"),
        ("ERROR: failed to copy: httpReadSeeker: 429 Too Many Requests", "rate-limited"),
        (
            "ERROR: read tcp 127.0.0.1:41234->127.0.0.1:5000: read: connection reset by peer",
            "transient",
        ),
        ('ERROR: no builder "ci" found', "unknown"),
    ],
)
def test_its_failures_are_classified_as_ours_are(stderr: str, kind: str) -> None:
    with pytest.raises(CommandFailed) as caught:
        whales.call(Redactor(), lambda: raising(docker_exception(stderr)))
    assert caught.value.cause.kind == kind


class Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, event: str, **_: object) -> None:
        self.warnings.append(event)

    def bind(self, **_: object) -> None:
        pass


def test_a_registry_503_through_python_on_whales_is_retried_then_succeeds() -> None:
    calls: list[int] = []

    def imagetools() -> str:  # a python-on-whales call: a 503 first, then an answer
        calls.append(1)
        if len(calls) == 1:
            raise docker_exception("ERROR: 503 Service Unavailable")
        return "ok"

    log = Log()
    policy = RetryPolicy(jitter=lambda: 0.0)
    done = with_retries(
        log,
        policy,
        "publish",
        "copy",
        "r.test",
        lambda _: whales.call(Redactor(), imagetools),
        sleep=lambda _: None,
    )
    assert done == "ok" and len(calls) == 2
    assert len(log.warnings) == 1 and "5xx" in log.warnings[0]


def test_docker_not_found_is_bad_input_and_an_unreadable_answer_a_tool_error() -> None:
    from python_on_whales.client_config import ClientNotFoundError

    missing = ClientNotFoundError("The binary 'docker' could not be found on your PATH.")
    with pytest.raises(InputError, match="docker is not installed") as caught:
        whales.call(Redactor(), lambda: raising(missing))
    assert caught.value.__cause__ is missing
    with pytest.raises(ToolError, match="could not be read"):
        whales.call(Redactor(), lambda: raising(ValueError("Could not find a builder")))


# --- PYTHON_ON_WHALES_DEBUG ---------------------------------------------------------------------


@pytest.fixture
def debugging_with_a_token(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> DockerClient:
    """PYTHON_ON_WHALES_DEBUG=1 and a token in the environment; a docker that answers
    `docker version` as the real one does."""
    answer = '{"Client":{"Version":"28.0.0"},"Server":null}'
    monkeypatch.setenv("PATH", str(fake_docker(tmp_path / "bin", f"echo {shlex.quote(answer)}")))
    monkeypatch.setenv(whales.DEBUG_VARIABLE, "1")
    monkeypatch.setenv("CI_JOB_TOKEN", SECRET)
    return DockerClient(client_call=["docker"])


def test_python_on_whales_alone_would_print_the_token(
    debugging_with_a_token: DockerClient, capfd: pytest.CaptureFixture[str]
) -> None:
    """What the neutralising is for: this test fails if python-on-whales stops printing."""
    debugging_with_a_token.version()
    assert SECRET in capfd.readouterr().out


def test_its_debug_print_is_off_for_every_call_of_the_run(
    debugging_with_a_token: DockerClient, capfd: pytest.CaptureFixture[str]
) -> None:
    version = whales.call(Redactor([SECRET]), debugging_with_a_token.version)
    assert version.client is not None and version.client.version == "28.0.0"
    out = capfd.readouterr().out
    assert SECRET not in out and "Env:" not in out
    assert os.environ[whales.DEBUG_VARIABLE] == "1"  # the caller's, back for their own calls


def test_the_debug_print_stays_off_while_any_call_is_in_flight(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(whales.DEBUG_VARIABLE, "1")
    first_in, second_done, seen = threading.Event(), threading.Event(), []

    def first() -> None:
        with whales.quiet():
            first_in.set()
            second_done.wait(5)
            seen.append(os.environ.get(whales.DEBUG_VARIABLE))

    thread = threading.Thread(target=first)
    thread.start()
    first_in.wait(5)
    with whales.quiet():  # begins after, ends before the first
        seen.append(os.environ.get(whales.DEBUG_VARIABLE))
    second_done.set()
    thread.join(5)
    assert seen == [None, None]
    assert os.environ[whales.DEBUG_VARIABLE] == "1"
