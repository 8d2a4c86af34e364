"""docker and buildx through python-on-whales, with a private config folder for the run.

The registry password reaches docker on stdin (python-on-whales' login uses --password-stdin) and
lands in a config folder that belongs to this run, never in the user's ~/.docker/config.json, which
on a shell runner outlives the job. python-on-whales' errors carry the whole command line: they are
turned into CommandFailed with everything redacted before they can reach a log.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance_tasks.adapters.process import LineSink, run
from provenance_tasks.errors import CommandFailed, ToolError
from provenance_tasks.redaction import Redactor

if TYPE_CHECKING:
    from python_on_whales import DockerClient


@dataclass(frozen=True)
class BuildRequest:
    context: Path
    dockerfile: Path | None
    tags: Sequence[str]  # full references: repository:tag
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    platforms: Sequence[str] = ()
    target: str | None = None
    builder: str | None = None
    pull: bool = False
    cache_from: Sequence[str] = ()
    cache_to: str | None = None
    secrets: Sequence[str] = ()  # buildx --secret specs (id=...,env=... / src=...)
    metadata_file: Path | None = None
    provenance: bool | None = None  # buildx's own attestation; None leaves buildx's default


class Docker:
    """One docker client for the run: a host, a private config folder, a redactor."""

    def __init__(
        self,
        *,
        redactor: Redactor,
        config_dir: Path | None = None,
        host: str | None = None,
        dry_run: bool = False,
    ) -> None:
        self.redactor = redactor
        self.config_dir = config_dir
        self.host = host
        self.dry_run = dry_run
        self._client: DockerClient | None = None

    @property
    def client(self) -> DockerClient:
        if self._client is None:
            from python_on_whales import DockerClient  # slow import: only when a step runs

            # A dry run swaps the docker binary for a recorder that prints the argv it was given,
            # so the dry run shows exactly the command python-on-whales would have run.
            call = [sys.executable, "-m", "provenance_tasks.adapters.argv_recorder", "docker"]
            self._client = DockerClient(
                config=self.config_dir,
                host=self.host,
                client_call=call if self.dry_run else ["docker"],
            )
        return self._client

    def environ(self) -> dict[str, str]:
        """The environment that makes other tools (cosign) see the same engine and logins."""
        env: dict[str, str] = {}
        if self.config_dir is not None:
            env["DOCKER_CONFIG"] = str(self.config_dir)
        if self.host is not None:
            env["DOCKER_HOST"] = self.host
        return env

    def login(
        self, registry: str, username: str, password: str, *, on_line: LineSink | None = None
    ) -> None:
        """`docker login`, the password on stdin.

        Run through our own run(), not python-on-whales' login: that one lets docker's stderr
        through uncaptured, past the step's section and the redactor, and keeps none of it for
        the error message.
        """
        self.redactor.add(password)
        argv = self.login_argv(registry, username)
        run(argv, redactor=self.redactor, env=self._env(), stdin=password, on_line=on_line)

    def login_argv(self, registry: str, username: str) -> list[str]:
        """`docker login`; the password goes on stdin, never here."""
        return [*self._docker_argv(), "login", "--username", username, "--password-stdin", registry]

    def build(self, request: BuildRequest, *, on_line: LineSink | None = None) -> list[str]:
        """Build and push to every tag; stream progress lines. Returns the redacted argv it ran."""
        from python_on_whales.exceptions import DockerException

        recorded: list[str] = []
        stream: Any = self.client.buildx.build(
            request.context,
            file=request.dockerfile,
            tags=list(request.tags),
            build_args=dict(request.build_args),
            labels=dict(request.labels),
            platforms=list(request.platforms) or None,
            target=request.target,
            builder=request.builder,
            pull=request.pull,
            cache_from=[buildx_options(spec) for spec in request.cache_from] or None,
            cache_to=request.cache_to,
            secrets=list(request.secrets),
            metadata_file=request.metadata_file,
            provenance=request.provenance,
            push=True,
            progress="plain",
            stream_logs=True,
        )
        try:
            for line in stream:  # stdout and stderr merged, already decoded
                if self.dry_run and line.startswith("argv:"):
                    # Parse, then redact: a secret JSON escapes would not match its escaped form.
                    recorded = self.redactor.redact_argv(json.loads(line[len("argv:") :]))
                    continue
                text = self.redactor.redact(line.rstrip("\n"))
                if on_line is not None:
                    on_line("build", text)
        except DockerException as exc:
            raise self._failed(exc) from None
        return recorded

    def resolve(self, reference: str) -> str:
        """The digest a tag points at now, read from the registry (not from the local store):
        one HTTP request with the run's login, or imagetools where a credential helper holds it."""
        from provenance_tasks.adapters import registry

        try:
            return registry.manifest_digest(reference, config_dir=self.config_dir)
        except registry.UseTheTool:
            pass
        argv = [*self._docker_argv(), "buildx", "imagetools", "inspect", reference]
        completed = run(
            [*argv, "--format", "{{json .Manifest}}"], redactor=self.redactor, env=self._env()
        )
        try:
            digest = json.loads(completed.stdout)["digest"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(f"could not read the digest of {reference} from the registry") from exc
        return str(digest)

    def check_buildx(self, builder: str | None) -> None:
        """docker and its buildx plugin are there, and so is the builder asked for (InputError)."""
        import shutil

        from provenance_tasks.errors import InputError, last_lines

        if not shutil.which("docker"):
            raise InputError(
                "docker is not installed (not found on PATH)",
                hint="install the docker CLI and its buildx plugin (ci/install-tools on Debian 12)",
            )
        docker = self._docker_argv()
        checks = [([*docker, "buildx", "version"], "the docker buildx plugin is missing")]
        if builder:
            checks.append(
                ([*docker, "buildx", "inspect", builder],
                 f"no buildx builder named {builder!r}")
            )  # fmt: skip
        for argv, problem in checks:
            done = run(argv, redactor=self.redactor, env=self._env(), check=False)
            if done.returncode != 0:
                raise InputError(
                    f"{problem}: {''.join(last_lines(done.stderr))}",
                    hint="see `docker buildx ls` for the builders; install buildx 0.13 or newer",
                )

    def _docker_argv(self) -> list[str]:
        argv = ["docker"]
        if self.config_dir is not None:
            argv += ["--config", str(self.config_dir)]
        return argv

    def _env(self) -> dict[str, str]:
        return {**os.environ, **({"DOCKER_HOST": self.host} if self.host else {})}

    def _failed(self, exc: Exception) -> CommandFailed:
        argv = [str(a) for a in getattr(exc, "docker_command", [])]
        stderr = getattr(exc, "stderr", "") or ""
        if isinstance(stderr, bytes):
            stderr = stderr.decode(errors="replace")
        return CommandFailed(
            "docker",
            self.redactor.redact_argv(argv),
            int(getattr(exc, "return_code", 1) or 1),
            self.redactor.redact(str(stderr)),
        )


def buildx_options(spec: str) -> dict[str, str]:
    """A buildx cache spec as python-on-whales takes a list of them: "type=registry,ref=r" → dict.

    A bare reference ("registry/app:cache") means a registry cache, as buildx reads it.
    """
    if "=" not in spec:
        return {"type": "registry", "ref": spec}
    return dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
