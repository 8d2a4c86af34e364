"""The public Python API: one run, its steps as methods, typed results.

    from provenance_tasks import Provenance

    with Provenance.open(c) as run:          # one run: one log, one report, one summary
        image = run.build(stage=True)        # -> Built
        with run.step("scan"):               # the caller's own step, in the log and the report
            scan(image.ref)
        run.sign(image)
        run.attest(image)
        run.verify(image)                    # -> Verification
        run.publish(image)                   # -> Published
        run.promote(image, "prod.example/app", tags=["1.0"])  # -> Promoted

A run is the unit of everything a CI job reads: it prints one "CI:" line when it opens, and one
summary, one report and one dotenv when it closes. Each call plans and checks its inputs before it
changes anything, as the task of the same name does; the invoke tasks, the console script and the
nox helper are this class and nothing else. A result handed to the next call carries its digest
and its run's record, so nothing goes through a file (a dry run works end to end), and a result
of another run is refused. Errors are the package's (`provenance_tasks.errors`), each with the
exit code a CI job branches on.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, overload

from provenance_tasks import convert, opening
from provenance_tasks.errors import InputError
from provenance_tasks.results import (
    Attested,
    Built,
    Promoted,
    Published,
    Signed,
    Verification,
)
from provenance_tasks.settings import Settings, resolve

if TYPE_CHECKING:
    from provenance_tasks.steps.run import Run, Tools
    from provenance_tasks.steps.runlog import RunLog, StepRecord

__all__ = ["Provenance"]

Image = Built | Mapping[str, Built] | str | None
R = TypeVar("R")


class Provenance:
    """One run of the steps: open it, call the steps, close it (a `with` block does both)."""

    def __init__(
        self, run: Run, tools: Tools, log: RunLog, config: Mapping[str, Any], given: dict[str, Any]
    ) -> None:
        self.run, self.tools, self.log = run, tools, log
        self._config, self._given = config, given
        self._calls: list[tuple[str, BaseException | None, int, int]] = []
        self._closed = False
        self._restore: Callable[[], None] = lambda: None

    @classmethod
    def open(
        cls,
        c: Any = None,
        /,
        *,
        environ: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        password: str | None = None,
        docker: Any = None,
        **settings: Any,
    ) -> Provenance:
        """Open a run.

        c: an invoke `Context` (its `provenance` config and `--dry`), a mapping of settings as
        invoke.yaml's `provenance:` holds them, or None to read the invoke.yaml of `cwd`.
        settings: keyword settings, as the flags of the tasks (`stage=True`, `tags=["v1"]`);
        they win over config and environment. environ: the environment the run reads (default
        os.environ); cwd: its folder (default the current one); password: a registry password
        (never a setting: it would reach the report). docker: a
        `python_on_whales.DockerClient` whose engine and configuration the run uses.
        """
        from provenance_tasks import logs
        from provenance_tasks.steps.run import Run, Tools
        from provenance_tasks.steps.runlog import RunLog

        folder = Path(cwd) if cwd is not None else Path.cwd()
        config, dry = opening.config_of(c, folder)
        given = opening.checked(settings)
        if dry:
            given["dry_run"] = True  # invoke's --dry means what our --dry-run does
        env = dict(os.environ if environ is None else environ)
        resolved = resolve(config, given, env)
        logs.configure(resolved.log_format, env)
        run = Run.start(resolved, env, cwd=folder.resolve(), password=password)
        log = RunLog(run.environ, resolved.log_format, None, run.redactor)
        log.dry_run = resolved.dry_run
        log.detected(run.ci.provider, run.ci.detected)
        tools = Tools(run, **({"docker_client": docker} if docker is not None else {}))
        from provenance_tasks.adapters.registry.traffic import TRAFFIC

        log.traffic = TRAFFIC.meter()  # closed with the run
        return cls(run, tools, log, config, given)

    # -- the steps -----------------------------------------------------------------------

    def login(self) -> Path | None:
        """Log in to the registry (CI variables, or `registry`/`username` and the password);
        returns the run's private docker config folder, or None when there was nothing to do."""
        from provenance_tasks.steps import login as login_step

        self._check_open()
        done = login_step.login(self.run, self.tools, self.log)
        return None if done is None else self.tools.docker_config

    def build(self, **settings: Any) -> Built | dict[str, Built]:
        """Build with buildx and push by digest; without `stage`, tag it too (verified later by
        nothing: compose `stage=True` with verify and publish to tag only what verified)."""
        run, raw = self._call("build", None, settings)
        return self._built(run, raw)

    @overload
    def sign(self, image: Built, **settings: Any) -> Signed: ...
    @overload
    def sign(self, image: Mapping[str, Built], **settings: Any) -> dict[str, Signed]: ...
    @overload
    def sign(self, image: str | None = None, **settings: Any) -> Signed | dict[str, Signed]: ...
    def sign(self, image: Image = None, **settings: Any) -> Signed | dict[str, Signed]:
        """Sign the image by digest, once per tag, with the CI's provenance annotations."""
        _, raw = self._call("sign", image, settings)
        return self._each(image, raw, lambda built, r: convert.signed(built, r))

    @overload
    def attest(self, image: Built, **settings: Any) -> Attested: ...
    @overload
    def attest(self, image: Mapping[str, Built], **settings: Any) -> dict[str, Attested]: ...
    @overload
    def attest(
        self, image: str | None = None, **settings: Any
    ) -> Attested | dict[str, Attested]: ...
    def attest(self, image: Image = None, **settings: Any) -> Attested | dict[str, Attested]:
        """Attach signed SLSA provenance to the image and each platform manifest."""
        _, raw = self._call("attest", image, settings)
        return self._each(image, raw, convert.attested)

    @overload
    def verify(self, image: Built, **settings: Any) -> Verification: ...
    @overload
    def verify(self, image: Mapping[str, Built], **settings: Any) -> dict[str, Verification]: ...
    @overload
    def verify(
        self, image: str | None = None, **settings: Any
    ) -> Verification | dict[str, Verification]: ...
    def verify(
        self, image: Image = None, **settings: Any
    ) -> Verification | dict[str, Verification]:
        """Verify signer, digest and every annotation; raises VerificationError (exit 3) when
        the signatures don't satisfy the policy."""
        run, raw = self._call("verify", image, settings)
        dry = run.settings.dry_run
        return self._each(image, raw, lambda built, r: convert.verification(built, r, dry))

    @overload
    def verify_attestation(self, image: Built, **settings: Any) -> Attested: ...
    @overload
    def verify_attestation(
        self, image: Mapping[str, Built], **settings: Any
    ) -> dict[str, Attested]: ...
    @overload
    def verify_attestation(
        self, image: str | None = None, **settings: Any
    ) -> Attested | dict[str, Attested]: ...
    def verify_attestation(
        self, image: Image = None, **settings: Any
    ) -> Attested | dict[str, Attested]:
        """Verify the SLSA provenance: signer, subject, builder id, source and commit."""
        _, raw = self._call("verify_attestation", image, settings)
        return self._each(image, raw, convert.attested)

    @overload
    def publish(self, image: Built, **settings: Any) -> Published: ...
    @overload
    def publish(self, image: Mapping[str, Built], **settings: Any) -> dict[str, Published]: ...
    @overload
    def publish(
        self, image: str | None = None, **settings: Any
    ) -> Published | dict[str, Published]: ...
    def publish(self, image: Image = None, **settings: Any) -> Published | dict[str, Published]:
        """Verify the digest here, then move the tags onto it and read each back."""
        run, raw = self._call("publish", image, settings)
        dry = run.settings.dry_run
        return self._each(image, raw, lambda built, r: convert.published(built, r, dry))

    def promote(
        self, source: Built | str | None = None, to: str | None = None, **settings: Any
    ) -> Promoted | dict[str, Promoted]:
        """Verify `source` (REPO@DIGEST, or a Built), copy it by digest with its signatures and
        attestations to the repository `to`, sign it there as this run's signer (with the
        source's annotations, the new tags and where it came from), verify it there, then move
        the tags (`tags=[...]`) onto it. The source's signer is described by `identity` and
        `issuer`, or `public_key`, given to `Provenance.open` (default: the run's own signer).
        Raises VerificationError (exit 3) when the source doesn't verify: nothing is copied or
        tagged then. Without `source`, the build's outputs name it (IMAGE_REF); in a run of a
        set (`images:`), each image's, promoted to `to/<name>`: a mapping by name comes back."""
        given = dict(settings)
        if source is not None:  # else the run's settings: --from, --to
            given["promote_from"] = source.ref if isinstance(source, Built) else source
        if to is not None:
            given["promote_to"] = to
        run, raw = self._call("promote", None, given)
        dry = run.settings.dry_run
        if isinstance(raw, list):
            return convert.of_set(raw, lambda _, r: convert.promoted(run, r, dry))
        return convert.promoted(run, raw, dry)

    def build_sign_verify(self, **settings: Any) -> Verification | dict[str, Verification]:
        """The whole job: build and push, sign, attest, verify, then publish the tags."""
        run, raw = self._call("build_sign_verify", None, settings)
        dry = run.settings.dry_run
        if isinstance(raw, list):
            return convert.of_set(raw, lambda b, r: convert.verification(b, r, dry))
        built = convert.built(run, self.log.results.get("build"), self.log.outputs)
        return convert.verification(built, raw, dry)

    @contextmanager
    def step(self, name: str, title: str | None = None) -> Iterator[StepRecord]:
        """The caller's own step: a section of the log, a line of the summary and an entry of
        the report, failed if its block raises (the exception goes on). Put what the report
        should say of it in the record's `detail` mapping."""
        self._check_open()
        first = len(self.log.steps)
        try:
            with self.log.step(name, title or name) as record:
                yield record
        except BaseException as exc:
            self._calls.append((name, exc, first, len(self.log.steps)))
            raise
        self._calls.append((name, None, first, len(self.log.steps)))

    # -- open and close -------------------------------------------------------------------

    def __enter__(self) -> Provenance:
        self._restore = opening.exit_on_signals()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close(error)

    def close(self, error: BaseException | None = None) -> None:
        """End the run: its report (whether it passed or failed), its summary, then its private
        folders removed (the login and tokens they hold). Once; a `with` block calls it."""
        if self._closed:
            return
        self._closed = True
        try:
            if isinstance(error, SystemExit | KeyboardInterrupt):
                self.tools.cancelled.set()  # the tools other threads run end now
            if not self.run.settings.of_a_set:  # a set's report is written per call, by image
                self._report(error)
            self.log.finish(error)
        finally:
            self.tools.close()
            if self.log.traffic is not None:
                self.log.traffic.close()
            self._restore()

    @property
    def settings(self) -> Settings:
        return self.run.settings

    # -- inside ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("this run is closed", hint="open another: Provenance.open(...)")

    def _call(self, task: str, image: Image, settings: Mapping[str, Any]) -> tuple[Run, Any]:
        """`task` on this run, its settings and images as given; what its pipeline returned."""
        from provenance_tasks.steps import pipeline

        self._check_open()
        run = self._run_for(task, image, settings)
        result: Any
        first, planned = len(self.log.steps), self.log.planned
        try:
            if run.settings.of_a_set:
                from provenance_tasks.steps.sets import (
                    run as images,  # a set's machinery: only for one
                )

                result = images.run_set(task, run, self.tools, self.log)
            else:
                result = pipeline.run_step(task, run, self.tools, self.log)
        except BaseException as exc:
            self._calls.append((task.replace("_", "-"), exc, first, len(self.log.steps)))
            raise
        finally:
            known = set(planned)
            self.log.planned = (*planned, *(s for s in self.log.planned if s not in known))
        self._calls.append((task.replace("_", "-"), None, first, len(self.log.steps)))
        return run, result

    def _run_for(self, task: str, image: Image, settings: Mapping[str, Any]) -> Run:
        """This call's run: the run's settings with the call's on top, and the images handed
        in, checked to be this run's. A call's `images=[NAME, ...]`, or a mapping of results
        handed in, picks those images of the run's set (`--only`)."""
        given = opening.checked(opening.picked(settings, image))
        wide = sorted(set(given) & opening.RUN_WIDE)
        if wide:
            raise InputError(
                f"{', '.join(wide)} can't change within a run",
                hint="pass it to Provenance.open(...)",
            )
        handed = convert.handed(image, self.run.id)
        if isinstance(image, str):
            repository, _, digest = image.partition("@")
            given = {"image": repository, "digest": digest, **given}
        run = self.run
        if given:
            config = {**self._config}
            resolved = resolve(config, {**self._given, **given}, run.environ)
            run = replace(run, settings=resolved)
        return replace(run, handed=MappingProxyType(handed)) if handed else run

    def _built(self, run: Run, raw: Any) -> Built | dict[str, Built]:
        if isinstance(raw, list):
            return convert.built_set(raw)
        return convert.built(run, raw, self.log.outputs)

    def _each(self, image: Image, raw: Any, make: Callable[[Built, Any], R]) -> R | dict[str, R]:
        if isinstance(raw, list):
            return convert.of_set(raw, make)
        if isinstance(image, Built):
            built = image
        else:  # a digest given, or an earlier job's outputs: as the step read it
            built = convert.built(self.run, None, self.log.outputs, reference=raw)
        return make(built, raw)

    def _report(self, error: BaseException | None) -> None:
        from provenance_tasks.steps import outputs

        calls = self._calls
        task = "+".join(name for name, *_ in calls) or "run"
        step_tasks: list[str] = [task] * len(self.log.steps)
        for name, _, first, last in calls:
            step_tasks[first:last] = [name] * (last - first)
        tasks = None
        if len(calls) > 1:
            tasks = [
                {
                    "task": name,
                    "id": self.run.id,
                    "status": "failed" if failed is not None else "ok",
                    "failure": convert.failure(self.log, failed) if failed is not None else None,
                }
                for name, failed, _, _ in calls
            ]
        try:
            outputs.write_report(
                self.run, self.log, task, error, tasks=tasks, step_tasks=step_tasks
            )
        except OSError as exc:  # the run's own exit says more than a report it couldn't write
            self.log.warning(f"the report could not be written: {exc}")
