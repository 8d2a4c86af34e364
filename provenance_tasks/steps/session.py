"""One run: its settings, environment, CI context, tools, and the record of its steps."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from provenance_tasks.errors import ProvenanceError
from provenance_tasks.logs import RunSummary, StepLog
from provenance_tasks.redaction import Redactor, secret_spec_variables
from provenance_tasks.settings import Settings
from provenance_tasks.steps.summary import summarize

if TYPE_CHECKING:
    from provenance_tasks.adapters.cosign import Cosign
    from provenance_tasks.adapters.docker import Docker
    from provenance_tasks.ci.base import CIContext
    from provenance_tasks.retry import RetryPolicy
    from provenance_tasks.sigstore import SigstoreInstance


@dataclass
class StepRecord:
    name: str
    status: str = "running"  # running, ok, failed, skipped
    duration_s: float = 0.0
    detail: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


class Session:
    def __init__(
        self,
        settings: Settings,
        environ: Mapping[str, str] | None = None,
        *,
        cwd: Path | None = None,
        password: str | None = None,
        stream: TextIO | None = None,
    ) -> None:
        from provenance_tasks.ci import detect

        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.cwd = cwd or Path.cwd()
        self.redactor = Redactor.from_environ(
            self.environ, extra=secret_spec_variables(settings.secrets)
        )
        if settings.password_env:
            self.redactor.add(self.environ.get(settings.password_env))
        self.redactor.add(password)
        self.password = password  # a registry password given on stdin, if any
        self.ci: CIContext = detect(self.environ, cwd=self.cwd)
        for secret in self.ci.secrets:
            self.redactor.add(secret)
        self.log = StepLog(self.environ, settings.log_format, stream, self.redactor)
        self.log.mask(self.redactor.secrets)  # GitHub: before anything else is printed
        self.planned: tuple[str, ...] = ()  # the steps a task means to run, for the summary
        self.steps: list[StepRecord] = []
        self.image: str | None = None  # the repository this run works on, once known
        self.digest: str | None = None  # the digest it signs or verifies, once known
        self.results: dict[str, Any] = {}
        self._docker_config: Path | None = (
            Path(settings.docker_config) if settings.docker_config else None
        )
        self._owns_docker_config = False
        self._private: Path | None = None  # trust files, TUF cache and ID tokens of this run
        self.token_claims: Mapping[str, object] | None = None  # of a token asked for (GitHub)

    # --- tools -------------------------------------------------------------------------------

    @cached_property
    def docker(self) -> Docker:
        from provenance_tasks.adapters.docker import Docker

        return Docker(
            redactor=self.redactor,
            config_dir=self._docker_config,
            host=self.settings.docker_host,
            dry_run=self.settings.dry_run,
        )

    @cached_property
    def sigstore(self) -> SigstoreInstance:
        """The Sigstore instance of this run, its files read and checked (InputError)."""
        from provenance_tasks.sigstore import instance

        s = self.settings
        return instance(
            fulcio_url=s.fulcio_url,
            rekor_url=s.rekor_url,
            tsa_url=s.tsa_url,
            signing_config=s.signing_config,
            trusted_root=s.trusted_root,
            unsafe_ignore_sct=s.unsafe_ignore_sct,
            cwd=self.cwd,
        )

    @cached_property
    def cosign(self) -> Cosign:
        """cosign, its major found, in the environment this run decides (adapters/cosign_env)."""
        from dataclasses import replace

        from provenance_tasks.adapters.cosign import Cosign
        from provenance_tasks.sigstore import cosign2_trust_files

        sigstore = self.sigstore
        cosign = Cosign.detect(
            self.settings.cosign,
            redactor=self.redactor,
            env=self.cosign_environment(),
            timeout=self.settings.timeout,
            sigstore=sigstore,
        )
        if sigstore.trusted_root is not None and cosign.major < 3:
            # cosign 2 takes a private instance's trust from SIGSTORE_* files only.
            trust = cosign2_trust_files(sigstore.trusted_root, self.private_folder() / "trust")
            cosign = replace(cosign, env=self.cosign_environment(trust))
        return cosign

    def cosign_environment(self, trust: Mapping[str, str] | None = None) -> dict[str, str]:
        """All that cosign sees in this run (adapters/cosign_env.py), with `trust` files."""
        from provenance_tasks.adapters.cosign_env import cosign_environment

        tuf_root = self.environ.get("TUF_ROOT")  # the public instance's cache: the user's own
        if self.sigstore.private:
            tuf_root = str(self.private_folder() / "tuf")  # never a shared cache or a mirror
        s = self.settings
        key_variables = tuple(
            ref[len("env://") :] for ref in (s.key, s.public_key) if ref and ref.startswith("env://")
        )
        for name in key_variables:
            self.redactor.add(self.environ.get(name))  # a private key's PEM is a secret
        return cosign_environment(
            self.environ,
            docker_config=self.docker.environ().get("DOCKER_CONFIG"),
            tuf_root=tuf_root,
            trust=trust or {},
            key_variables=key_variables,
            settings={
                "cosign_repository": self.settings.cosign_repository,
                "cosign_docker_media_types": self.settings.cosign_docker_media_types,
            },
        )

    def private_folder(self) -> Path:
        """A folder only this run can read (0700), removed when the run ends."""
        if self._private is None:
            self._private = Path(tempfile.mkdtemp(prefix="provenance-run-"))
        return self._private

    @cached_property
    def retry_policy(self) -> RetryPolicy:
        from provenance_tasks.retry import RetryPolicy

        s = self.settings
        return RetryPolicy(
            attempts=s.retry_attempts,
            budget_s=s.retry_budget,
            wait_s=s.retry_wait,
            rate_limit_wait_s=s.rate_limit_wait,
        )

    def private_docker_config(self) -> Path:
        """A docker config folder for this run's logins (0700), shared by buildx and cosign."""
        if self._docker_config is None:
            self._docker_config = Path(tempfile.mkdtemp(prefix="provenance-docker-"))
            self._owns_docker_config = True
            # Builders made by `docker buildx create` live in the user's config: keep them visible.
            users = Path(self.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "buildx"
            if users.is_dir():
                (self._docker_config / "buildx").symlink_to(users)
        self._docker_config.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._docker_config.chmod(0o700)
        if "docker" in self.__dict__:
            del self.__dict__["docker"]  # the client must pick the folder up (it runs nothing)
        if "cosign" in self.__dict__:
            # The same cosign, its major already probed, now seeing the run's logins.
            from dataclasses import replace

            cosign = self.__dict__["cosign"]
            env = {**cosign.env, "DOCKER_CONFIG": str(self._docker_config)}
            self.__dict__["cosign"] = replace(cosign, env=env)
        return self._docker_config

    @property
    def docker_config(self) -> Path | None:
        return self._docker_config

    def close(self) -> None:
        """Remove the private docker config (it holds a login) unless asked to keep it, and the
        run's private folder (trust files, ID tokens)."""
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)
        if (
            self._owns_docker_config
            and self._docker_config
            and not self.settings.keep_docker_config
        ):
            shutil.rmtree(self._docker_config, ignore_errors=True)

    # --- steps -------------------------------------------------------------------------------

    @contextmanager
    def step(self, name: str, title: str, *, collapsed: bool = True) -> Iterator[StepRecord]:
        record = StepRecord(name)
        self.steps.append(record)
        self.log.start(name, title, collapsed=collapsed)
        started = time.monotonic()
        try:
            yield record
        except BaseException as exc:
            record.status = "failed"
            record.error = exc
            record.duration_s = time.monotonic() - started
            message = exc.message if isinstance(exc, ProvenanceError) else type(exc).__name__
            self.log.end(name, "failed", record.duration_s, error=message)
            raise
        record.status = "ok" if record.status == "running" else record.status
        record.duration_s = time.monotonic() - started
        self.log.end(name, record.status, record.duration_s, **record.detail)

    def bind_image(self, repository: str, digest: str | None = None) -> None:
        """From here on every record names the image (and the digest, once there is one)."""
        self.image = repository
        self.digest = digest or self.digest
        self.log.bind(image=self.image, digest=self.digest)

    def plan(self, *steps: str) -> None:
        """The steps this run means to take; the summary lists those that never ran."""
        self.planned = steps

    def finish(self, error: BaseException | None = None) -> RunSummary:
        """Print the summary (last thing of a run) and return it."""
        summary = summarize(self, error)
        self.log.summary(summary)
        return summary

    def tool_output(self, step: str) -> Any:
        """A line sink that streams a tool's output into the step's section."""

        def sink(stream: str, line: str) -> None:
            self.log.line(step, stream, self.redactor.redact(line))

        return sink
