"""Registry login into this run's private docker config, the password on stdin."""

from __future__ import annotations

from provenance_tasks.adapters.process import LineSink, render
from provenance_tasks.errors import InputError
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog


def credentials(run: Run) -> tuple[str, str, str] | None:
    """(registry, username, password) from flags or the CI context; None when there is no login."""
    s, ci = run.settings, run.ci
    registry = s.registry or ci.registry
    username = s.username or ci.registry_user
    password, source = run.password, "--password-stdin"
    if password is None and s.password_env:
        password, source = run.environ.get(s.password_env), s.password_env
    if password is None:
        password, source = ci.registry_password, ci.registry_password_source or "the CI password"
    if not registry and not (s.username or run.password or s.password_env):
        return None
    if not registry:
        raise InputError(
            "a login was asked for without a registry", hint="pass --registry HOST[:PORT]"
        )
    if not username:
        raise InputError(f"no user name for {registry}", hint="pass --username")
    if not password:
        raise InputError(
            f"no password for {username}@{registry} (looked in {source})",
            hint="pipe it to --password-stdin or name its variable with --password-env",
        )
    return registry, username, password


def login(run: Run, tools: Tools, log: RunLog) -> str | None:
    """Log in; returns the registry, or None when there was nothing to log in to."""
    found = credentials(run)
    if found is None:
        return None
    registry, username, password = found
    # Once per run: the images of a set share the login the first of them (or the run) made.
    return tools.once(
        ("login", registry), lambda: _log_in(run, tools, log, registry, username, password)
    )


def _log_in(
    run: Run, tools: Tools, log: RunLog, registry: str, username: str, password: str
) -> str:
    config = tools.private_docker_config()
    with log.step("login", f"Log in to {registry}", collapsed=False) as record:
        record.detail = {"registry": registry, "user": username, "docker_config": str(config)}
        if not run.settings.dry_run:
            with_retries(
                log,
                tools.retry_policy,
                "login",
                f"log in to {registry}",
                registry,
                lambda _: tools.docker.login(
                    registry, username, password, on_line=_without_store_warning(log, config)
                ),
            )
        else:
            argv = tools.docker.login_argv(registry, username)
            log.info("dry-run", command=render(argv, run.redactor))
    return registry


# docker's warning about its config file, which is this run's private folder, removed at exit.
_STORE_WARNING = (
    "WARNING! Your credentials are stored unencrypted",
    "Configure a credential",
    "https://docs.docker.com/go/credential-store/",
)


def _without_store_warning(log: RunLog, config: object) -> LineSink:
    """The login's output, docker's "stored unencrypted" warning said as what it is here."""
    sink = log.tool_output("login")

    def line(stream: str, text: str) -> None:
        if text.startswith(_STORE_WARNING[0]):
            sink(
                stream,
                f"the login is in this run's private docker config ({config}), "
                "removed when the run ends",
            )
        elif not text.startswith(_STORE_WARNING[1:]):
            sink(stream, text)

    return line
