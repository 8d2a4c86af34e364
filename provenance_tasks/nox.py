"""The API from a nox session: in-process, as the invoke tasks run it (no `session.run`).

    import nox
    from provenance_tasks.nox import provenance

    @nox.session(python=False)
    def release(session: nox.Session) -> None:
        with provenance(session) as run:
            image = run.build(stage=True)
            run.sign(image)
            run.verify(image)
            run.publish(image)

`nox -s release -- --tag v1 --dry-run` passes settings as the tasks' flags do; keyword settings
given in the noxfile win over them. The session's environment (`session.env`) is the run's, over
the process's. A failure of the run fails the session with the run's one message and exit code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from provenance_tasks.api import Provenance
from provenance_tasks.errors import InputError, ProvenanceError

__all__ = ["flags", "provenance"]


@contextmanager
def provenance(session: Any, **settings: Any) -> Iterator[Provenance]:
    """One run of the API for `session`: settings from its posargs, then `settings`."""
    environ = {**os.environ, **{k: str(v) for k, v in (session.env or {}).items() if v}}
    try:
        given = {**flags(session.posargs), **settings}
        with Provenance.open(None, environ=environ, cwd=Path.cwd(), **given) as run:
            yield run
    except ProvenanceError as exc:
        session.error(f"provenance-tasks (exit {exc.exit_code}): {exc.diagnostics()}")


def flags(args: Sequence[str]) -> dict[str, Any]:
    """The tasks' flags (`--tag v1 --tag v2`, `--dry-run`, `--no-tlog`) as settings."""
    from provenance_tasks.options import OPTIONS

    by_flag = {o.param.replace("_", "-"): o for o in OPTIONS}
    found: dict[str, Any] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, has_value, value = arg.removeprefix("--").partition("=")
        option = by_flag.get(name) if arg.startswith("--") else None
        if option is None:
            raise InputError(f"unknown flag {arg}", hint="use the flags of the invoke tasks")
        if isinstance(option.default, bool):
            if has_value:
                raise InputError(f"{arg}: --{name} takes no value")
            negated = option.param.startswith("no_") and option.default is True
            found[option.key] = not negated  # --no-tlog: tlog off
            continue
        if not has_value:
            if not rest:
                raise InputError(f"--{name} needs a value")
            value = rest.pop(0)
        if isinstance(option.default, list):
            found.setdefault(option.key, []).append(value)
        else:
            found[option.key] = value
    return found
