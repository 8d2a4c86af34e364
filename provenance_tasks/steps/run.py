"""A run's inputs (`Run`) and the tools it drives (`Tools`): what every step is handed.

`Run` is what the run was given: settings, environment, working folder, the CI context detected
from them, the redactor that knows every secret, and a password read from stdin. Nothing in it
changes once made, except that the redactor learns secrets that appear later (a fresh ID token).

`Tools` are built from a `Run` when first used: the docker client, cosign with its major probed and
the environment it sees, the Sigstore instance, the retry policy, and the run's private folders
(a docker config for its logins, a folder for trust files and tokens), which `close()` removes.
The log of the run is `steps/runlog.py`'s.
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from provenance_tasks.redaction import Redactor, secret_spec_variables
from provenance_tasks.settings import Settings

if TYPE_CHECKING:
    from python_on_whales import DockerClient

    from provenance_tasks.adapters.cosign import Cosign
    from provenance_tasks.adapters.docker import BuildRequest, Docker
    from provenance_tasks.adapters.registry import Registry
    from provenance_tasks.ci.base import CIContext
    from provenance_tasks.image_index import IndexContents
    from provenance_tasks.retry import RetryPolicy
    from provenance_tasks.sigstore import SigstoreInstance
    from provenance_tasks.steps.build_inputs import SourceFacts
    from provenance_tasks.steps.calls import Request
    from provenance_tasks.steps.outputs import Earlier, Outputs
    from provenance_tasks.steps.sigstore_writes import SigstoreWrites

T = TypeVar("T")


@dataclass(frozen=True)
class Run:
    settings: Settings
    environ: Mapping[str, str]
    cwd: Path
    ci: CIContext
    redactor: Redactor
    password: str | None = None  # a registry password given on stdin, if any
    id: str = ""  # this run's own id, recorded in its outputs
    # One image of provenance.images (steps/sets/run.py): its name, and what the outputs this
    # folder held said of it before the run removed them.
    image_name: str | None = None
    before: Earlier | None = None
    # What a Python caller handed this call (api.py), by image name ("" for one image): read
    # before any file, so a composition hands its digests over without one.
    handed: Mapping[str, Earlier] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def start(
        cls,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        password: str | None = None,
    ) -> Run:
        """Detect the CI context and gather every secret the run knows of, before any output."""
        from provenance_tasks.ci import detect

        env = dict(os.environ if environ is None else environ)
        cwd = cwd or Path.cwd()
        redactor = Redactor.from_environ(env, extra=secret_spec_variables(settings.secrets))
        if settings.password_env:
            redactor.add(env.get(settings.password_env))
        redactor.add(password)
        ci = detect(env, cwd=cwd)
        for secret in ci.secrets:
            redactor.add(secret)
        return cls(settings, env, cwd, ci, redactor, password, secrets.token_hex(8))

    def for_image(self, name: str, settings: Settings, before: Earlier | None) -> Run:
        """The run of image `name` of a set: its own settings, titled by its name, and its
        default repository the CI's with the name under it ($CI_REGISTRY_IMAGE/svc-a)."""
        labels = {**self.ci.labels, "org.opencontainers.image.title": name}
        default = f"{self.ci.default_repository}/{name}" if self.ci.default_repository else None
        ci = replace(self.ci, labels=MappingProxyType(labels), default_repository=default)
        return replace(self, settings=settings, ci=ci, image_name=name, before=before)

    @property
    def staged_here(self) -> bool:
        """The image was handed in by this run's own staged build (api.py): its tags are
        published after the verify, by publish, which reads each back."""
        handed = self.handed.get(self.image_name or "")
        return handed is not None and not handed.values.get("IMAGE_PUBLISHED")

    def path(self, value: str) -> Path:
        """A path setting, relative to the run's folder."""
        return (self.cwd / value).resolve()


class Tools:
    """The tools of one run, each made once, when first needed."""

    def __init__(self, run: Run, *, docker_client: DockerClient | None = None) -> None:
        self.run = run
        s = run.settings
        if docker_client is not None:  # the caller's engine and config (adapters/whales.py)
            from provenance_tasks.adapters.whales import handed_in

            handed_in(
                docker_client, host=s.docker_host, context=s.docker_context, config=s.docker_config
            )
        self.docker_client = docker_client
        self._docker_config: Path | None = Path(s.docker_config) if s.docker_config else None
        self._owns_docker_config = False
        self._private: Path | None = None  # trust files, TUF cache and ID tokens of this run
        self.cancelled = threading.Event()  # the run gave up: tools it started end at once
        # Indexes read by digest (content-addressed, so a second look would say the same):
        # sign and verify of one run read each once.
        self.indexes: dict[str, IndexContents] = {}
        self.lock = threading.RLock()
        self._once: dict[tuple[str, ...], _Once] = {}
        # The docker and registry clients, each with the config folder it was made for: made
        # again (they run nothing) once the run logs in to a private one.
        self._docker: tuple[Path | None, Docker] | None = None
        self._registry: tuple[Path | None, Registry] | None = None

    def once(self, key: tuple[str, ...], work: Callable[[], T]) -> T:
        """`work()` once per run for `key` (a probe, a login): every later caller, in any
        image's thread, gets its answer, or its error, again instead of asking twice."""
        with self.lock:
            slot = self._once.setdefault(key, _Once())
        with slot.lock:
            if not slot.done:
                try:
                    slot.value = work()
                except Exception as exc:
                    slot.error = exc
                slot.done = True
        if slot.error is not None:
            raise slot.error
        return slot.value  # type: ignore[no-any-return]

    def meet(self, request: Request) -> Any:
        """A cosign call that the images of a set may share: made here, for this image alone
        (an image of a set hands it to the set's meeting: steps/sets/tools.py)."""
        return request.run(list(request.refs))

    def baked_facts(self) -> SourceFacts | None:
        """What a set's bake read of this image's sources: none, for a run of one image."""
        return None

    def baked(self, wanted: BuildRequest) -> Path | None:
        """The metadata of this image's build in a set's bake: none, for a run of one image."""
        return None

    @property
    def outputs(self) -> Outputs:
        """Where the run's outputs come from and go: this folder's files."""
        from provenance_tasks.steps.outputs import FOLDER_OUTPUTS

        return FOLDER_OUTPUTS

    @property
    def docker(self) -> Docker:
        """docker and buildx, through the run's DockerClient: the one handed in, or one made
        from the settings when first used; with the run's own config folder once it logs in."""
        if self._docker is None or self._docker[0] != self._docker_config:
            self._docker = (self._docker_config, self._make_docker())
        return self._docker[1]

    def _make_docker(self) -> Docker:
        from provenance_tasks.adapters.docker import Docker, find_buildx
        from provenance_tasks.adapters.whales import plugin_can_run

        s = self.run.settings
        client = self.docker_client
        folders = [Path(s.docker_config)] if s.docker_config else []
        if s.buildx == "docker" or not (s.buildx or plugin_can_run(client)):
            plugin = None  # `docker buildx`: the docker of the client decides
        elif s.buildx:
            plugin = _executable(s.buildx, "provenance.buildx")
        else:
            plugin = find_buildx([*folders, self._users_docker_config()])
        return Docker(
            client=client,
            buildx=plugin,
            redactor=self.run.redactor,
            config_dir=self._docker_config,
            host=s.docker_host,
            context=s.docker_context,
            dry_run=s.dry_run,
            cancel=self.cancelled,
        )

    @property
    def registry(self) -> Registry:
        """The registry client: the run's logins, the run's docker for imagetools behind it."""
        from provenance_tasks.adapters.registry import Registry

        if self._registry is None or self._registry[0] != self._docker_config:
            made = Registry(self.docker_config, imagetools=lambda: self.docker)
            self._registry = (self._docker_config, made)
        return self._registry[1]

    @cached_property
    def sigstore(self) -> SigstoreInstance:
        """The Sigstore instance of this run, its files read and checked (InputError)."""
        from provenance_tasks.sigstore import instance

        s = self.run.settings
        return instance(
            fulcio_url=s.fulcio_url,
            rekor_url=s.rekor_url,
            tsa_url=s.tsa_url,
            signing_config=s.signing_config,
            trusted_root=s.trusted_root,
            unsafe_ignore_sct=s.unsafe_ignore_sct,
            cwd=self.run.cwd,
        )

    @property
    def cosign(self) -> Cosign:
        """cosign as probed, with the run's own docker config folder once it logs in (a login
        after the probe: cosign keeps its major and gets the folder in its environment)."""
        probed = self.probed_cosign
        folder = str(self._docker_config) if self._docker_config else None
        if folder is None or probed.env.get("DOCKER_CONFIG") == folder:
            return probed
        return replace(probed, env={**probed.env, "DOCKER_CONFIG": folder})

    @cached_property
    def probed_cosign(self) -> Cosign:
        """cosign, its major found, in the environment this run decides (adapters/cosign_env)."""
        from provenance_tasks.adapters.cosign import Cosign
        from provenance_tasks.sigstore import cosign2_trust_files

        s = self.run.settings
        cosign = Cosign.detect(
            s.cosign,
            redactor=self.run.redactor,
            env=self.cosign_environment(),
            timeout=s.timeout,
            sigstore=self.sigstore,
        )
        if self.sigstore.trusted_root is not None and cosign.major < 3:
            # cosign 2 takes a private instance's trust from SIGSTORE_* files only.
            trust = cosign2_trust_files(self.sigstore.trusted_root, self.private_folder() / "trust")
            cosign = replace(cosign, env=self.cosign_environment(trust))
        return replace(cosign, cancel=self.cancelled)

    def cosign_environment(self, trust: Mapping[str, str] | None = None) -> dict[str, str]:
        """All that cosign sees in this run (adapters/cosign_env.py), with `trust` files."""
        from provenance_tasks.adapters.cosign_env import cosign_environment
        from provenance_tasks.models import KeyRef

        run, s = self.run, self.run.settings
        tuf_root = run.environ.get("TUF_ROOT")  # the public instance's cache: the user's own
        if self.sigstore.private:
            tuf_root = str(self.private_folder() / "tuf")  # never a shared cache or a mirror
        refs = [KeyRef.parse(ref) for ref in (s.key, s.public_key) if ref]
        key_variables = tuple(ref.env_variable for ref in refs if ref.env_variable is not None)
        for name in key_variables:
            run.redactor.add(run.environ.get(name))  # a private key's PEM is a secret
        return cosign_environment(
            run.environ,
            docker_config=self.docker.environ().get("DOCKER_CONFIG"),
            tuf_root=tuf_root,
            trust=trust or {},
            key_variables=key_variables,
            settings={
                "cosign_repository": s.cosign_repository,
                "cosign_docker_media_types": s.cosign_docker_media_types,
            },
        )

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        from provenance_tasks.retry import RetryPolicy

        return RetryPolicy.from_settings(self.run.settings)

    @cached_property
    def sigstore_writes(self) -> SigstoreWrites:
        """The run's bound on signing processes at once and log writes a minute."""
        from provenance_tasks.steps.sigstore_writes import SigstoreWrites

        s = self.run.settings
        return SigstoreWrites(s.sigstore_jobs, s.rekor_writes_per_minute, self.cancelled)

    def private_folder(self) -> Path:
        """A folder only this run can read (0700), removed when the run ends."""
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="provenance-run-"))
        return self._private

    def private_docker_config(self) -> Path:
        """A docker config folder for this run's logins (0700), shared by buildx and cosign."""
        if self._docker_config is None:
            self._docker_config = Path(tempfile.mkdtemp(prefix="provenance-docker-"))
            self._owns_docker_config = True
            self._see_users_engines(self._docker_config)
        self._docker_config.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._docker_config.chmod(0o700)
        return self._docker_config  # docker, the registry and cosign see it from now on

    def _see_users_engines(self, folder: Path) -> None:
        """The user's builders (`docker buildx create`) and contexts (`docker context create`)
        live in their config: linked, so buildx and docker see them from the private one. Their
        current context is kept too: without it, a build meant for a remote engine would run on
        the local one without a word."""
        import json

        users = self._users_docker_config()
        for name in ("buildx", "contexts", "cli-plugins"):
            if (users / name).is_dir():
                (folder / name).symlink_to(users / name)
        try:
            config = json.loads((users / "config.json").read_text())
            kept = {k: config[k] for k in ("currentContext", "cliPluginsExtraDirs") if k in config}
        except (OSError, ValueError, AttributeError, TypeError):
            kept = {}
        if kept.get("currentContext") == "default":
            del kept["currentContext"]
        if kept:
            (folder / "config.json").write_text(json.dumps(kept))

    def _users_docker_config(self) -> Path:
        """The config the run's logins would otherwise go to: the client's handed in, the
        job's DOCKER_CONFIG, or ~/.docker."""
        handed = self.docker_client.client_config.config if self.docker_client else None
        return Path(handed or self.run.environ.get("DOCKER_CONFIG") or Path.home() / ".docker")

    @property
    def docker_config(self) -> Path | None:
        """The config folder the run's calls read logins from: its own once made, else the
        one of the client handed in (None: the job's DOCKER_CONFIG or ~/.docker)."""
        handed = self.docker_client.client_config.config if self.docker_client else None
        return self._docker_config or (Path(handed) if handed else None)

    def close(self) -> None:
        """Remove the private docker config (it holds a login) unless asked to keep it, and the
        run's private folder (trust files, ID tokens)."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
        keep = self.run.settings.keep_docker_config
        if self._owns_docker_config and self._docker_config and not keep:
            shutil.rmtree(self._docker_config, ignore_errors=True)


class _Once:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done = False
        self.value: Any = None
        self.error: Exception | None = None


def _executable(path: str, setting: str) -> str:
    """`path` if it is a program this machine can start, else bad input that says so."""
    import os

    from provenance_tasks.errors import InputError

    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise InputError(
            f"{setting}: no executable file at {path}",
            hint="give the buildx plugin's path, or docker, or leave it unset",
        )
    return path
