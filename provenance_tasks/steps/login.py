"""Registry login into this run's private docker config, the password on stdin."""

from __future__ import annotations

from provenance_tasks.adapters.process import render
from provenance_tasks.errors import InputError
from provenance_tasks.steps.retrying import with_retries
from provenance_tasks.steps.session import Session


def credentials(session: Session) -> tuple[str, str, str] | None:
    """(registry, username, password) from flags or the CI context; None when there is no login."""
    s, ci = session.settings, session.ci
    registry = s.registry or ci.registry
    username = s.username or ci.registry_user
    password, source = session.password, "--password-stdin"
    if password is None and s.password_env:
        password, source = session.environ.get(s.password_env), s.password_env
    if password is None:
        password, source = ci.registry_password, ci.registry_password_source or "the CI password"
    if not registry and not (s.username or session.password or s.password_env):
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


def login(session: Session) -> str | None:
    """Log in; returns the registry, or None when there was nothing to log in to."""
    found = credentials(session)
    if found is None:
        return None
    registry, username, password = found
    config = session.private_docker_config()
    with session.step("login", f"Log in to {registry}", collapsed=False) as record:
        record.detail = {"registry": registry, "user": username, "docker_config": str(config)}
        if not session.settings.dry_run:
            with_retries(
                session,
                "login",
                f"log in to {registry}",
                registry,
                lambda _: session.docker.login(
                    registry, username, password, on_line=session.tool_output("login")
                ),
            )
        else:
            argv = session.docker.login_argv(registry, username)
            session.log.info("dry-run", command=render(argv, session.redactor))
    return registry
