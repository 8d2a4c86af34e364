"""docker and buildx for the run: a python-on-whales DockerClient holds the client configuration,
process.run runs the long and the secret commands, with a private config folder for the logins.

The client (adapters/whales.py) is the caller's own, or one made from the settings when a docker
step first needs it: its host or context, its config folder, its docker binary. A named
builder is inspected through its `buildx.inspect`. Build, bake and login run through process.run
on the command line its `docker_cmd` gives (or on the buildx plugin run directly, with the same
config, host and context in its environment): output streamed and redacted, the build
cancellable and retried, a failure raised as CommandFailed with its redacted command and stderr.

The registry password reaches docker on stdin (`login --password-stdin`) and lands in a config
folder that belongs to this run, never in the user's ~/.docker/config.json (or the config of a
client handed in), which on a shell runner outlives the job. A dry run renders the same argv it
would run.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from provenance_tasks.adapters import whales
from provenance_tasks.adapters.process import LineSink, run
from provenance_tasks.errors import CommandFailed, InputError, ToolError
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
    annotations: Sequence[str] = ()  # OCI annotations, LEVEL:KEY=VALUE
    platforms: Sequence[str] = ()
    target: str | None = None
    builder: str | None = None
    pull: bool = False
    no_cache: bool = False  # every step built anew (a cache record BuildKit lost: steps/build.py)
    cache_from: Sequence[str] = ()
    cache_to: str | None = None
    secrets: Sequence[str] = ()  # buildx --secret specs (id=...,env=... / src=...)
    metadata_file: Path | None = None
    provenance: str | None = None  # buildx's own attestation: off, mode=min/max; None: default
    layout: Path | None = None  # export an OCI layout folder here instead of pushing the tags
    load: bool = False  # into the engine's image store instead (no OCI exporter: saved later)
    rewrite_timestamp: bool = False  # the layout's layer times become SOURCE_DATE_EPOCH


class Docker:
    """The run's docker: its DockerClient, the buildx plugin to run directly, a redactor and the
    run's cancel.

    `client`: a caller's own DockerClient, the run's engine and config; `config_dir` then
    replaces its config folder in a copy (the run's logins), and `host` or `context` fill in an
    engine it doesn't name (whales.completed). Without one, a client is made from `config_dir`,
    `host` and `context` when first used.
    """

    def __init__(
        self,
        *,
        redactor: Redactor,
        client: DockerClient | None = None,
        config_dir: Path | None = None,
        host: str | None = None,
        context: str | None = None,
        dry_run: bool = False,
        cancel: threading.Event | None = None,
        buildx: str | None = None,
    ) -> None:
        self.redactor = redactor
        if client is not None:
            client = whales.completed(client, config=config_dir, host=host, context=context)
            own = client.client_config
            config_dir = Path(own.config) if own.config is not None else None
            host, context = own.host, own.context
            if buildx and not whales.plugin_can_run(client):
                raise InputError(
                    "provenance.buildx runs the buildx plugin without docker in front, which "
                    "can't be handed this DockerClient's binary or TLS files",
                    hint="leave provenance.buildx unset, or set it to docker",
                )
        self._client = client
        # The buildx plugin's own binary (find_buildx), run as docker would run it but without
        # the docker CLI in front: None runs `docker buildx`.
        self.buildx = buildx
        self.config_dir = config_dir
        self.host = None if context else host  # a context names its engine: it wins
        self.context = context  # a docker context (another engine); it beats DOCKER_HOST
        self.dry_run = dry_run
        self.cancel = cancel  # set by the run to end a build it no longer wants

    @property
    def client(self) -> DockerClient:
        """The run's python-on-whales client: the caller's (a copy with the run's config folder
        once it logs in), or one made from the settings now. A caller's own step may use it:
        the same engine, config and logins as the run's own calls."""
        if self._client is None:
            self._client = whales.make_client(
                config=self.config_dir, host=self.host, context=self.context
            )
        return self._client

    @property
    def binary(self) -> str:
        """The docker the client runs (its `client_call`), as named: on PATH or a path."""
        return self._client.client_config.client_call[0] if self._client else "docker"

    def environ(self) -> dict[str, str]:
        """The environment that makes other tools (cosign) see the same engine and logins."""
        env: dict[str, str] = {}
        if self.config_dir is not None:
            env["DOCKER_CONFIG"] = str(self.config_dir)
        if self.host is not None:
            env["DOCKER_HOST"] = self.host
        if self.context is not None:
            env["DOCKER_CONTEXT"] = self.context
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
        """Build and push to every tag, or export to `request.layout`; stream progress lines.
        Returns the redacted argv; a dry run runs nothing and only returns it."""
        argv = self.build_argv(request)
        if self.dry_run:
            return self.redactor.redact_argv(argv)
        try:
            run(argv, redactor=self.redactor, env=self._env(), on_line=on_line, cancel=self.cancel)
        except CommandFailed as failed:
            _missing_buildx_or_builder(failed, request.builder)
            raise
        return self.redactor.redact_argv(argv)

    def run_buildx(self, args: Sequence[str], *, on_line: LineSink | None = None) -> None:
        """buildx with `args` (a bake: adapters/bake.py), as a build runs: cancellable."""
        run(
            [*self._buildx_argv(), *args],
            redactor=self.redactor,
            env=self._env(),
            on_line=on_line,
            cancel=self.cancel,
        )

    def build_argv(self, request: BuildRequest) -> list[str]:
        """`docker buildx build`, one flag per setting, the context last (as buildx reads it)."""
        argv = [*self._buildx_argv(), "build", "--progress", "plain"]
        for tag in request.tags:
            argv += ["--tag", tag]
        for name, value in request.build_args.items():
            argv += ["--build-arg", f"{name}={value}"]
        for name, value in request.labels.items():
            argv += ["--label", f"{name}={value}"]
        for annotation in request.annotations:
            argv += ["--annotation", annotation]
        if request.platforms:
            argv += ["--platform", ",".join(request.platforms)]
        if request.target:
            argv += ["--target", request.target]
        if request.builder:
            argv += ["--builder", request.builder]
        if request.pull:
            argv.append("--pull")
        if request.no_cache:
            argv.append("--no-cache")
        for spec in request.cache_from:
            options = buildx_options(spec)
            argv += ["--cache-from", ",".join(f"{k}={v}" for k, v in options.items())]
        if request.cache_to:
            argv += ["--cache-to", request.cache_to]
        for secret in request.secrets:
            argv += ["--secret", secret]
        if request.metadata_file is not None:
            argv += ["--metadata-file", str(request.metadata_file)]
        if request.provenance is not None:
            off = request.provenance == "off"
            argv.append(f"--provenance={'false' if off else request.provenance}")
        if request.dockerfile is not None:
            argv += ["--file", str(request.dockerfile)]
        if request.layout is not None:
            rewrite = ",rewrite-timestamp=true" if request.rewrite_timestamp else ""
            argv += ["--output", f"type=oci,dest={request.layout},tar=false{rewrite}"]
        elif request.load:
            argv.append("--load")
        else:
            argv.append("--push")
        return [*argv, str(request.context)]

    def save(self, image_id: str, archive: Path) -> list[str]:
        """`docker image save` of one image, by its ID, into the file `archive` (the classic
        engine's way out for a loaded build: adapters/docker_archive.py). Cancellable."""
        argv = [*self._docker_argv(), "image", "save", "--output", str(archive), image_id]
        if not self.dry_run:
            run(argv, redactor=self.redactor, env=self._env(), cancel=self.cancel)
        return self.redactor.redact_argv(argv)

    def resolve(self, reference: str) -> str:
        """The digest a tag points at now, read from the registry (not from the local store) by
        `imagetools inspect`. The run's registry client (adapters/registry) asks this only where
        its HTTP path can't serve: a credential helper holds the login, a redirect elsewhere."""
        argv = [*self._buildx_argv(), "imagetools", "inspect", reference]
        completed = run(
            [*argv, "--format", "{{json .Manifest}}"], redactor=self.redactor, env=self._env()
        )
        try:
            digest = json.loads(completed.stdout)["digest"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ToolError(f"could not read the digest of {reference} from the registry") from exc
        return str(digest)

    def manifest(self, reference: str) -> tuple[str, bytes]:
        """The media type and bytes of the manifest or index at `reference` (REPO@DIGEST), by
        `imagetools inspect --raw`: for the registry client, where its HTTP path can't serve."""
        argv = [*self._buildx_argv(), "imagetools", "inspect", "--raw", reference]
        data = run(argv, redactor=self.redactor, env=self._env()).stdout.encode()
        try:
            media_type = str(json.loads(data).get("mediaType") or "")
        except (ValueError, AttributeError) as exc:
            raise ToolError(f"could not read the manifest of {reference}") from exc
        return media_type, data

    def copy_image(self, source: str, tag: str) -> None:
        """Put the manifest at `source` (REPO@DIGEST) under `tag`, server side, as it is:
        --prefer-index=false, since by default imagetools wraps a single manifest in a new index,
        a new digest that nobody signed. For the registry client, where its HTTP copy can't
        serve."""
        argv = [
            *self._buildx_argv(),
            "imagetools",
            "create",
            "--prefer-index=false",
            "--tag",
            tag,
            source,
        ]
        run(argv, redactor=self.redactor, env=self._env())

    def check_builder(self, builder: str) -> None:
        """The buildx builder asked for exists (InputError), through python-on-whales'
        `buildx.inspect` (which also lists the builders, to return the one named). Only a named
        builder is probed: the build itself tells that buildx is missing
        (_missing_buildx_or_builder)."""
        from provenance_tasks.errors import last_lines

        try:
            whales.call(self.redactor, lambda: self.client.buildx.inspect(builder))
        except CommandFailed as failed:
            raise InputError(
                f"no buildx builder named {builder!r}: {''.join(last_lines(failed.stderr))}",
                hint="see `docker buildx ls` for the builders, or drop --builder",
            ) from failed.__cause__

    def check_present(self) -> None:
        """The docker the client runs is installed (InputError): every run of a build needs
        it, if only for the login."""
        import shutil

        if not shutil.which(self.binary):
            raise InputError(
                f"{self.binary} is not installed (not found on PATH)",
                hint="install the docker CLI and its buildx plugin (ci/install-tools on Debian 12)",
            )

    def shown_environ(self) -> dict[str, str]:
        """What a dry run prints in front of a buildx line, so that the pasted line reaches the
        same engine with the same config: the plugin run directly reads them from its
        environment, where docker's `docker_cmd` says them in the argv (--config, --host)."""
        return self.environ() if self.buildx else {}

    def _docker_argv(self) -> list[str]:
        return whales.docker_argv(self.client)

    def _buildx_argv(self) -> list[str]:
        return [self.buildx] if self.buildx else [*self._docker_argv(), "buildx"]

    def _env(self) -> dict[str, str]:
        env = {**os.environ, **({"DOCKER_HOST": self.host} if self.host else {})}
        if self.config_dir is not None:
            env["DOCKER_CONFIG"] = str(self.config_dir)  # buildx run directly reads it here
        if self.context is not None:
            env["DOCKER_CONTEXT"] = self.context
            # The context asked for names its engine: a DOCKER_HOST from the job's environment
            # would win over it, and build elsewhere without a word.
            env.pop("DOCKER_HOST", None)
        return env


#: Where docker looks for its plugins on Linux once the config folder's own and the config's
#: cliPluginsExtraDirs are searched (docker/cli's cli-plugins/manager).
SYSTEM_PLUGIN_DIRS = (
    "/usr/local/lib/docker/cli-plugins",
    "/usr/local/libexec/docker/cli-plugins",
    "/usr/lib/docker/cli-plugins",
    "/usr/libexec/docker/cli-plugins",
)


def find_buildx(config_folders: Sequence[Path]) -> str | None:
    """The buildx plugin where docker would find it for the user: each config folder's
    cli-plugins (the run's own, then the user's DOCKER_CONFIG or ~/.docker) and the folders its
    config.json lists in cliPluginsExtraDirs, then the system's folders. None: not found, and
    `docker buildx` says what is missing.

    Run directly, buildx skips the docker CLI in front of it and the metadata call that docker
    makes to the plugin first: 0.04 CPU-s a call instead of 0.11 (measured on `version`), paid
    by every image's build. It also finds a plugin in the user's own cli-plugins, which docker
    pointed at the run's private config folder would not.
    """
    folders: list[str] = []
    for config in config_folders:
        folders.append(str(config / "cli-plugins"))
        try:
            extra = json.loads((config / "config.json").read_text()).get("cliPluginsExtraDirs")
            folders += [str(d) for d in extra or []]
        except (OSError, ValueError, AttributeError, TypeError):
            pass
    for folder in (*folders, *SYSTEM_PLUGIN_DIRS):
        candidate = Path(folder) / "docker-buildx"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _missing_buildx_or_builder(failed: CommandFailed, builder: str | None) -> None:
    """The build is buildx's own probe (no `buildx version` first): its plugin or the builder
    asked for being absent is bad input, said as such (exit 2), not a tool failure."""
    text = failed.stderr
    if "'buildx' is not a docker command" in text or "unknown command: docker buildx" in text:
        raise InputError(
            "the docker buildx plugin is missing",
            hint="install the docker CLI and its buildx plugin (ci/install-tools on Debian 12)",
        ) from None
    import re

    switch = re.search(r"use `docker --context=(\S+) buildx` to switch to context", text)
    if builder and switch:  # the builder is another context's docker-driver builder
        raise InputError(
            f"the buildx builder {builder!r} is the engine of docker context {switch[1]!r}",
            hint=f"set provenance.docker_context to {switch[1]} (and keep --builder)",
        ) from None
    if builder and f'no builder "{builder}" found' in text:
        raise InputError(
            f"no buildx builder named {builder!r}",
            hint="see `docker buildx ls` for the builders, or drop --builder",
        ) from None


def buildx_options(spec: str) -> dict[str, str]:
    """A buildx cache spec as a mapping: "type=registry,ref=r" → dict.

    A bare reference ("registry/app:cache") means a registry cache, as buildx reads it.
    """
    if "=" not in spec:
        return {"type": "registry", "ref": spec}
    return dict(part.split("=", 1) for part in spec.split(",") if "=" in part)
