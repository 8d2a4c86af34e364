"""The image tasks: thin wrappers that turn flags into settings and call the Python API.

Every flag comes from the settings table (`provenance_tasks.settings.OPTIONS`): its name, its
help and the tasks that take it. invoke reads a task's flags from its signature, so each task's
signature is made from the table (`__signature__`), which keeps one source for all of them.
"""

from __future__ import annotations

import inspect
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import Task, task

from provenance_tasks.settings import OPTIONS

T = TypeVar("T")

#: Flags that are no setting of their own.
PASSWORD_STDIN = ("password_stdin", "read the registry password from standard input")


def _flags(given: dict[str, Any]) -> dict[str, Any]:
    """Flag values to settings keys; False/None/[] mean "not given", so config applies."""
    flags: dict[str, Any] = {}
    for option in OPTIONS:
        if option.param not in given:
            continue
        value = given[option.param]
        if option.param.startswith("no_") and option.default is True:  # --no-tlog, --no-attest
            flags[option.key] = False if value else None
        elif isinstance(value, bool):
            flags[option.key] = True if value else None
        else:
            flags[option.key] = value
    return flags


Body = Callable[[Any], T]  # (Provenance) -> what its calls returned


def _run(c: Context, given: dict[str, Any], body: Body[T]) -> T:
    """The edge: one run of the API; its errors become one message and an exit code."""
    from provenance_tasks import logs
    from provenance_tasks.api import Provenance
    from provenance_tasks.errors import ProvenanceError
    from provenance_tasks.redaction import Redactor

    redactor = Redactor.from_environ(os.environ)
    opened: Any = None
    flags = _flags(given)
    try:
        password = sys.stdin.readline().rstrip("\r\n") if given.get("password_stdin") else None
        with Provenance.open(c, password=password, **flags) as run:
            opened, redactor = run, run.run.redactor
            return body(run)
    except ProvenanceError as exc:
        if _json_lines(c, flags, opened):
            if opened is None:  # failed before the run began: still one JSON summary
                _json_failure(redactor, exc)
            raise Exit(code=exc.exit_code) from None  # the summary event said it all, as JSON
        message = logs.neutralise(redactor.redact(exc.diagnostics()))
        raise Exit(f"provenance-tasks: {message}", code=exc.exit_code) from None
    except (SystemExit, KeyboardInterrupt) as exc:  # ^C, SIGTERM: the summary says so
        code = exc.code if isinstance(exc, SystemExit) else 130
        name = {130: "SIGINT", 143: "SIGTERM"}.get(code if isinstance(code, int) else 0, "")
        if not _json_lines(c, flags, opened):  # in JSON, the summary event says it
            print(
                f"provenance-tasks: interrupted{f' ({name})' if name else ''}: its tools were "
                "ended and nothing more was pushed or tagged",
                file=sys.stderr,
            )
        if isinstance(exc, KeyboardInterrupt):  # before the handler was in place: still 130
            raise SystemExit(130) from None
        raise


def _json_lines(c: Context, flags: dict[str, Any], opened: Any) -> bool:
    """Whether the run logs JSON lines: its settings', or (it never opened) what they'd be."""
    if opened is not None:
        return bool(opened.settings.log_format == "json")
    from provenance_tasks.errors import ProvenanceError
    from provenance_tasks.settings import resolve

    try:
        config = dict(c.config.get("provenance", {}))
        return resolve(config, flags, os.environ).log_format == "json"
    except (ProvenanceError, KeyError, TypeError):
        return False


def _json_failure(redactor: Any, exc: Any) -> None:
    from provenance_tasks.logs import Failure, RunSummary, StepLog

    hint = redactor.redact(exc.hint) if exc.hint else None
    failure = Failure(None, redactor.redact(exc.message), exc.exit_code, hint=hint)
    StepLog(os.environ, "json", redactor=redactor).summary(RunSummary((), failure=failure))


def provenance_task(
    name: str,
    run: Body[T],
    doc: str,
    *,
    extra: tuple[tuple[str, str], ...] = (),
    fixed: dict[str, Any] | None = None,
) -> Task[Any]:
    """An invoke task named `name` taking the flags the table gives it, running `run(api)` on
    one run of the API (`provenance_tasks.api.Provenance`).

    No automatic short flags: invoke gave -h to --cache-from (so `build -h` built and pushed),
    and -p, -a, -r a different meaning per task. -h stays invoke's help.
    """
    options = [o for o in OPTIONS if name in o.tasks]
    kind = inspect.Parameter.POSITIONAL_OR_KEYWORD
    params = [inspect.Parameter("c", kind)]
    helps: dict[str, str] = {}
    iterable: list[str] = []
    for option in options:
        default = False if isinstance(option.default, bool) else None
        params.append(inspect.Parameter(option.param, kind, default=default))
        helps[option.param.strip("_").replace("_", "-")] = option.help  # from_: --from
        if isinstance(option.default, list):
            iterable.append(option.param)
    for param, text in extra:
        params.append(inspect.Parameter(param, kind, default=False))
        helps[param.replace("_", "-")] = text

    def body(c: Context, **given: Any) -> T:
        return _run(c, {**given, **(fixed or {})}, run)

    body.__name__ = body.__qualname__ = name.replace("-", "_")
    body.__doc__ = doc
    body.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    made: Task[Any] = task(name=name, help=helps, iterable=iterable, auto_shortflags=False)(body)
    return made


def _login(run: Any) -> None:
    from provenance_tasks.errors import InputError

    folder = run.login()
    if folder is None:
        raise InputError(
            "nothing to log in to", hint="pass --registry and --username (or run in CI)"
        )
    print(f"DOCKER_CONFIG={folder}")


def _call(step: str) -> Body[Any]:
    """The API call of `step`, made when the task runs (nothing imported at --list)."""

    def body(run: Any) -> Any:
        return getattr(run, step)()

    return body


login = provenance_task(
    "login",
    _login,
    """Log in to a registry (CI variables or flags) in a private docker config folder.

    The folder is kept for the tasks that follow: its path is printed as DOCKER_CONFIG=... for
    their --docker-config.
    """,
    extra=(PASSWORD_STDIN,),
    fixed={"keep_docker_config": True},  # the login is for the tasks that follow
)
build = provenance_task(
    "build",
    _call("build"),
    "Build with buildx, push by digest, then tag it (--stage: no tag, for publish later).",
    extra=(PASSWORD_STDIN,),
)
sign = provenance_task(
    "sign",
    _call("sign"),
    "Sign IMAGE@DIGEST (never a tag) once per tag, with the CI provenance annotations.",
    extra=(PASSWORD_STDIN,),
)
verify = provenance_task(
    "verify",
    _call("verify"),
    """Verify IMAGE@DIGEST: signer (key, or identity + issuer), digest and every annotation.

    With --tag, each tag must point at the digest at the registry. Prints expected against found.
    """,
    extra=(PASSWORD_STDIN,),
)
publish = provenance_task(
    "publish",
    _call("publish"),
    """Verify IMAGE@DIGEST here, then create or move the tags onto it (a copy of its manifest)
    and read each tag back. The end of build --stage, sign, verify, publish.""",
    extra=(PASSWORD_STDIN,),
)
attest = provenance_task(
    "attest",
    _call("attest"),
    """Attach signed SLSA v1 provenance to IMAGE@DIGEST and each platform manifest (cosign
    attest), made from the CI context and the build's inputs.""",
    extra=(PASSWORD_STDIN,),
)
verify_attestation = provenance_task(
    "verify-attestation",
    _call("verify_attestation"),
    """Verify the SLSA v1 provenance of IMAGE@DIGEST and each platform: signer, subject,
    builder id, source repository and commit.""",
    extra=(PASSWORD_STDIN,),
)
build_sign_verify = provenance_task(
    "build-sign-verify",
    _call("build_sign_verify"),
    "The whole job: check inputs, log in, build and push, sign the digest, verify it.",
    extra=(PASSWORD_STDIN,),
)
promote = provenance_task(
    "promote",
    _call("promote"),
    """Promote --from REPO@DIGEST to --to REPOSITORY: verify the source (its signer: --identity
    and --issuer, or --public-key; its annotations, every platform, its provenance), copy it by
    digest with its signatures and attestations, sign it there as this run's signer, verify it
    there, and only then move --tag there onto it.""",
    extra=(PASSWORD_STDIN,),
)
