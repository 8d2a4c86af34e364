"""python-on-whales at the edge: the run's DockerClient, the command line it gives, and its calls
made quiet and turned into this package's errors.

One `python_on_whales.DockerClient` per run holds the client configuration: the engine (a host or
a context), the config folder, the docker binary (`client_call`) and any TLS files. A Python
caller may hand in its own (a remote engine, a context, another config); otherwise the run makes
one from its settings. It is imported when a docker step first needs it (pydantic underneath:
a few tenths of a second), never for `--list`, `--help` or `--version`.

Its high-level methods make the calls they express (a named builder's inspection). Every other
docker command line starts with its `docker_cmd` and runs through process.run: build and bake
(streamed, redacted, cancellable: its own run() is a blocking subprocess.run with no handle),
login (its login lets docker's stderr through, past the redactor), and the imagetools fallbacks
of the registry adapters (its `imagetools.inspect` returns a model without the digest and
without the entries' annotations, its `create` can't say --prefer-index=false).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from provenance_tasks.errors import CommandFailed, InputError, ToolError
from provenance_tasks.redaction import Redactor

if TYPE_CHECKING:
    from python_on_whales import DockerClient
    from python_on_whales.exceptions import DockerException

T = TypeVar("T")

#: Set to 1, python-on-whales' run() prints each command's whole environment (tokens included).
DEBUG_VARIABLE = "PYTHON_ON_WHALES_DEBUG"

# What a client can say that the buildx plugin, run without docker in front, can't be told by
# its environment (DOCKER_CONFIG, DOCKER_HOST, DOCKER_CONTEXT): docker runs buildx then.
_BEYOND_THE_ENVIRONMENT = (
    "tls",
    "tlscacert",
    "tlscert",
    "tlskey",
    "tlsverify",
    "debug",
    "log_level",
)


def make_client(*, config: Path | None, host: str | None, context: str | None) -> DockerClient:
    """The run's client from its settings: the docker on PATH, at `host` or `context`."""
    from python_on_whales import DockerClient  # pydantic underneath: only when a step runs

    # A context names its engine: it wins over a host, as it does over the job's DOCKER_HOST
    # (docker refuses --host beside --context). client_call: a list of the client's own.
    host = None if context else host
    return DockerClient(config=config, host=host, context=context, client_call=["docker"])


def completed(
    client: DockerClient, *, config: Path | None, host: str | None, context: str | None
) -> DockerClient:
    """`client` with the run's config folder (where its logins go) and, where the client names
    no engine, the settings' one: a copy, the caller's own client and its config folder left as
    they are (`client` itself when nothing changes). handed_in() has refused any contradiction."""
    own = client.client_config
    changes: dict[str, object] = {}
    if config is not None and str(config) != str(own.config):
        changes["config"] = config
    if not (own.host or own.context) and (host or context):
        changes["context" if context else "host"] = context or host
    if not changes:
        return client
    from python_on_whales import DockerClient

    return DockerClient(client_config=dataclasses.replace(own, **changes))  # type: ignore[arg-type]


def handed_in(
    client: DockerClient,
    *,
    host: str | None,
    context: str | None,
    config: str | None,
) -> None:
    """A client handed in is the run's engine and config; settings may fill in what it leaves
    unset (completed()), but one that names another is bad input, said once, rather than one of
    them silently winning."""
    own = client.client_config
    given = {
        "docker_host": (host, own.host),
        "docker_context": (context, own.context),
        "docker_config": (config, own.config),
    }
    for setting, (value, client_value) in given.items():
        if value is None or client_value is None:
            continue
        if str(value) != str(client_value):
            raise InputError(
                f"provenance.{setting} is {value}, but the DockerClient handed in says "
                f"{client_value}",
                hint=f"give it one way: drop provenance.{setting}, or hand in a client for it",
            )
    if (host or own.host) and (context or own.context):
        raise InputError(
            "a docker host and a docker context were both given (settings and DockerClient)",
            hint="name the engine one way: a host or a context",
        )


def docker_argv(client: DockerClient) -> list[str]:
    """The client's `docker_cmd`: its global flags (--config, --context, --host, TLS), and its
    binary as the caller named it, found on PATH when it runs (python-on-whales resolves it
    first; a dry run shows the name, on a machine that may have no docker)."""
    config = client.client_config
    # docker_cmd takes the binary from _client_call_with_path, which it otherwise fills with a
    # PATH lookup that fails where no docker is (test_whales.py pins this against docker_cmd).
    named = dataclasses.replace(config, _client_call_with_path=list(config.client_call))
    return [str(word) for word in named.docker_cmd]


def plugin_can_run(client: DockerClient | None) -> bool:
    """Whether the buildx plugin, run directly, can be handed everything this client says by
    its environment: the docker on PATH, and no TLS files or debug flags of its own (None: the
    run's own client, made from its settings, which say no more)."""
    if client is None:
        return True
    config = client.client_config
    said = any(getattr(config, name) for name in _BEYOND_THE_ENVIRONMENT)
    return list(config.client_call) == ["docker"] and not said


def call(redactor: Redactor, work: Callable[[], T]) -> T:
    """`work()`, a python-on-whales call, with its debug print off; its failures as this
    package's errors, redacted, the DockerException kept (redacted too) as their __cause__:

    - a command that failed: CommandFailed, whose stderr retry.py classifies as it does ours
      (a registry's 503 or 429 is retried, a 401 is not);
    - docker not found: InputError, as preflight says it;
    - an answer its models can't read: ToolError.
    """
    from python_on_whales.client_config import ClientNotFoundError, ParsingError
    from python_on_whales.exceptions import DockerException

    try:
        with quiet():
            return work()
    except DockerException as exc:
        raise failed(exc, redactor) from exc
    except ClientNotFoundError as exc:
        raise InputError(
            "docker is not installed (not found on PATH)",
            hint="install the docker CLI and its buildx plugin (ci/install-tools on Debian 12)",
        ) from exc
    except (ParsingError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise ToolError(f"docker's answer could not be read: {type(exc).__name__}") from exc


def failed(exc: DockerException, redactor: Redactor) -> CommandFailed:
    """The DockerException as CommandFailed; the exception itself is redacted in place (its
    command, output and message), since it rides along as the cause."""
    exc.docker_command = redactor.redact_argv(exc.docker_command)
    exc.stdout = redactor.redact(exc.stdout) if exc.stdout else exc.stdout
    exc.stderr = redactor.redact(exc.stderr) if exc.stderr else exc.stderr
    exc.args = tuple(redactor.redact(str(arg)) for arg in exc.args)
    argv = exc.docker_command
    tool = Path(argv[0]).name if argv else "docker"
    return CommandFailed(tool, argv, exc.return_code, exc.stderr or "")


class _Quiet:
    """PYTHON_ON_WHALES_DEBUG taken out of the environment while any of the run's
    python-on-whales calls is in flight (threads may overlap), and put back after the last."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside = 0
        self.saved: str | None = None

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            if self.inside == 0:
                self.saved = os.environ.pop(DEBUG_VARIABLE, None)
            self.inside += 1
        try:
            yield
        finally:
            with self.lock:
                self.inside -= 1
                if self.inside == 0 and self.saved is not None:
                    os.environ.setdefault(DEBUG_VARIABLE, self.saved)  # the caller's, for theirs
                    self.saved = None


quiet = _Quiet()
