"""The image tasks: thin wrappers that turn flags into Settings and call the core steps."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

T = TypeVar("T")

HELP = {
    "context": "build context folder (default: .)",
    "file": "Dockerfile path (default: CONTEXT/Dockerfile)",
    "image": "repository, without tag (default: from CI, or localhost:5000/FOLDER)",
    "tag": "tag to push and sign (repeatable; default: from CI, e.g. the short commit SHA)",
    "digest": "digest to sign or verify (default: IMAGE_REF of an earlier run)",
    "build-arg": "NAME=value build argument (repeatable; secrets are refused: use --secret)",
    "secret": "buildx --secret spec, e.g. id=npmrc,env=NPM_TOKEN (repeatable)",
    "platform": "target platform, e.g. linux/amd64 (repeatable)",
    "target": "Dockerfile stage to build",
    "builder": "buildx builder to use",
    "pull": "always pull newer base images",
    "cache-from": "buildx --cache-from spec (repeatable)",
    "cache-to": "buildx --cache-to spec",
    "mode": "signing mode: auto, key, keyless or certificate",
    "key": "private key: a file, env://VAR or a KMS URI (password from COSIGN_PASSWORD)",
    "public-key": "public key for verify (default: KEY with .pub, or the KMS URI)",
    "certificate": "signing certificate (certificate mode)",
    "certificate-chain": "CA chain of the certificate (certificate mode and its verify)",
    "trusted-root": "trusted_root.json for new-bundle signatures from a private CA",
    "annotation": "key=value annotation added to every signature (repeatable)",
    "identity": "expected certificate identity (default: derived from CI)",
    "issuer": "expected OIDC issuer (default: derived from CI)",
    "no-tlog": "sign and verify without a transparency log (key and certificate modes; warns)",
    "bundle-format": "signature format: classic (default, read by every cosign) or new (cosign 3)",
    "registry": "registry to log in to (default: from CI)",
    "username": "registry user (default: from CI)",
    "password-env": "name of the variable holding the registry password",
    "password-stdin": "read the registry password from standard input",
    "docker-config": "docker config folder for this run's logins (default: a new private one)",
    "keep-docker-config": "keep the private docker config folder (and its login) at the end",
    "dry-run": "print the exact commands, secrets redacted, and change nothing",
    "report": "path of the JSON report (default: provenance-report.json)",
    "log-format": "auto, console or json",
}
ITERABLES = ["tag", "build_arg", "secret", "platform", "cache_from", "annotation"]


def _flags(**given: Any) -> dict[str, Any]:
    """Task parameters to settings keys; False/None/[] mean "not given", so config applies."""
    renames = {
        "tag": "tags",
        "build_arg": "build_args",
        "secret": "secrets",
        "platform": "platforms",
        "annotation": "annotations",
    }
    flags: dict[str, Any] = {}
    for name, value in given.items():
        if name == "no_tlog":
            flags["tlog"] = False if value else None
        elif name in ("password_stdin",):
            continue
        elif isinstance(value, bool):
            flags[renames.get(name, name)] = True if value else None
        else:
            flags[renames.get(name, name)] = value
    return flags


def _run(c: Context, given: dict[str, Any], body: Callable[[Any], T]) -> T:
    """The edge: settings, logging, one session; errors become one message and an exit code."""
    from provenance_tasks import logs
    from provenance_tasks.errors import ProvenanceError
    from provenance_tasks.redaction import Redactor
    from provenance_tasks.settings import resolve
    from provenance_tasks.steps.session import Session

    session = None
    redactor = Redactor.from_environ(os.environ)
    json_lines = False
    try:
        config = dict(c.config.get("provenance", {}))
        flags = _flags(**given)
        if c.config.get("run", {}).get("dry"):
            flags["dry_run"] = True  # invoke's own --dry means what our --dry-run does
        settings = resolve(config, flags, os.environ)
        json_lines = settings.log_format == "json"
        password = sys.stdin.readline().rstrip("\r\n") if given.get("password_stdin") else None
        logs.configure(settings.log_format, os.environ)
        session = Session(settings, password=password)
        redactor = session.redactor
        result = body(session)
        session.finish()
        return result
    except ProvenanceError as exc:
        if session is not None:
            session.finish(exc)
        if json_lines:
            if session is None:  # failed before the run began: still one JSON summary
                _json_failure(redactor, exc)
            raise Exit(code=exc.exit_code) from None  # the summary event said it all, as JSON
        message = logs.neutralise(redactor.redact(exc.diagnostics()))
        raise Exit(f"provenance-tasks: {message}", code=exc.exit_code) from None
    except Exception as exc:
        if session is not None:
            session.finish(exc)
        raise
    finally:
        if session is not None:
            session.close()


def _json_failure(redactor: Any, exc: Any) -> None:
    from provenance_tasks.logs import Failure, RunSummary, StepLog

    hint = redactor.redact(exc.hint) if exc.hint else None
    failure = Failure(None, redactor.redact(exc.message), exc.exit_code, hint=hint)
    StepLog(os.environ, "json", redactor=redactor).summary(RunSummary((), failure=failure))


def documented(**options: Any) -> Callable[[Callable[..., None]], Any]:
    """@task with the shared help text of exactly the flags this task takes."""

    def decorate(body: Callable[..., None]) -> Any:
        import inspect

        flags = [p.replace("_", "-") for p in inspect.signature(body).parameters if p != "c"]
        # No automatic short flags: invoke gave -h to --cache-from (so `build -h` built and
        # pushed) and -p, -a, -r a different meaning per task. -h stays invoke's help.
        return task(
            help={f: HELP[f] for f in flags if f in HELP}, auto_shortflags=False, **options
        )(body)

    return decorate


# Flags every task shares, and those of the build. Task bodies capture locals() first thing, so
# the parameter names are the settings' names (see _flags for the few renames).
Str = str | None


@documented()
def login(
    c: Context,
    registry: Str = None,
    username: Str = None,
    password_env: Str = None,
    password_stdin: bool = False,
    docker_config: Str = None,
    dry_run: bool = False,
    log_format: Str = None,
) -> None:
    """Log in to a registry (CI variables or flags) in a private docker config folder.

    The folder is kept for the tasks that follow: its path is printed as DOCKER_CONFIG=... for
    their --docker-config.
    """
    given = dict(locals(), keep_docker_config=True)
    given.pop("c")

    def body(session: Any) -> None:
        from provenance_tasks.errors import InputError
        from provenance_tasks.steps.login import login as run_login

        if run_login(session) is None:
            raise InputError(
                "nothing to log in to", hint="pass --registry and --username (or run in CI)"
            )
        print(f"DOCKER_CONFIG={session.docker_config}")

    _run(c, given, body)


@documented(iterable=ITERABLES)
def build(
    c: Context,
    context: Str = None,
    file: Str = None,
    image: Str = None,
    tag: list[str] | None = None,
    build_arg: list[str] | None = None,
    secret: list[str] | None = None,
    platform: list[str] | None = None,
    target: Str = None,
    builder: Str = None,
    pull: bool = False,
    cache_from: list[str] | None = None,
    cache_to: Str = None,
    registry: Str = None,
    username: Str = None,
    password_env: Str = None,
    password_stdin: bool = False,
    docker_config: Str = None,
    dry_run: bool = False,
    report: Str = None,
    log_format: Str = None,
) -> None:
    """Build with buildx and push to every tag; the digest comes from buildx's metadata."""
    given = dict(locals())
    given.pop("c")
    from provenance_tasks.steps.pipeline import run_build

    _run(c, given, run_build)


@documented(iterable=["tag", "annotation"])
def sign(
    c: Context,
    image: Str = None,
    digest: Str = None,
    tag: list[str] | None = None,
    annotation: list[str] | None = None,
    mode: Str = None,
    key: Str = None,
    certificate: Str = None,
    certificate_chain: Str = None,
    no_tlog: bool = False,
    bundle_format: Str = None,
    registry: Str = None,
    username: Str = None,
    password_env: Str = None,
    password_stdin: bool = False,
    docker_config: Str = None,
    dry_run: bool = False,
    report: Str = None,
    log_format: Str = None,
) -> None:
    """Sign IMAGE@DIGEST (never a tag) once per tag, with the CI provenance annotations."""
    given = dict(locals())
    given.pop("c")
    from provenance_tasks.steps.pipeline import run_sign

    _run(c, given, run_sign)


@documented(iterable=["tag", "annotation"])
def verify(
    c: Context,
    image: Str = None,
    digest: Str = None,
    tag: list[str] | None = None,
    annotation: list[str] | None = None,
    mode: Str = None,
    key: Str = None,
    public_key: Str = None,
    certificate_chain: Str = None,
    trusted_root: Str = None,
    identity: Str = None,
    issuer: Str = None,
    no_tlog: bool = False,
    registry: Str = None,
    username: Str = None,
    password_env: Str = None,
    password_stdin: bool = False,
    docker_config: Str = None,
    report: Str = None,
    log_format: Str = None,
) -> None:
    """Verify IMAGE@DIGEST: signer (key, or identity + issuer), digest and every annotation.

    With --tag, each tag must point at the digest at the registry. Prints expected against found.
    """
    given = dict(locals())
    given.pop("c")
    from provenance_tasks.steps.pipeline import run_verify

    _run(c, given, lambda session: run_verify(session, check_tags=bool(tag)))


@documented(iterable=ITERABLES, name="build-sign-verify")
def build_sign_verify(
    c: Context,
    context: Str = None,
    file: Str = None,
    image: Str = None,
    tag: list[str] | None = None,
    build_arg: list[str] | None = None,
    secret: list[str] | None = None,
    platform: list[str] | None = None,
    target: Str = None,
    builder: Str = None,
    pull: bool = False,
    cache_from: list[str] | None = None,
    cache_to: Str = None,
    annotation: list[str] | None = None,
    mode: Str = None,
    key: Str = None,
    public_key: Str = None,
    certificate: Str = None,
    certificate_chain: Str = None,
    trusted_root: Str = None,
    identity: Str = None,
    issuer: Str = None,
    no_tlog: bool = False,
    bundle_format: Str = None,
    registry: Str = None,
    username: Str = None,
    password_env: Str = None,
    password_stdin: bool = False,
    docker_config: Str = None,
    keep_docker_config: bool = False,
    dry_run: bool = False,
    report: Str = None,
    log_format: Str = None,
) -> None:
    """The whole job: check inputs, log in, build and push, sign the digest, verify it."""
    given = dict(locals())
    given.pop("c")
    from provenance_tasks.steps.pipeline import run_build_sign_verify

    _run(c, given, run_build_sign_verify)
