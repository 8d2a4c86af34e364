"""Which CI the run is in, and what it knows: `detect(environ)` returns a resolved `CIContext`.

Detection keys only on the variable each CI sets to exactly "true" for its own jobs
(`GITLAB_CI`, then `GITHUB_ACTIONS`). `CI=true` alone is set by many systems and says nothing
about where the provenance variables would be: it is an unknown CI, which gets no default image
and no key pair (a guess made in CI would sign something silently wrong). Without `CI`, a laptop.
Those tests, and the helpers that read a CI's variables, are `_env.py`'s.

The providers are imported when detection runs: the logs import `_env.py` before then.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from provenance_tasks.ci.base import Annotation, CIContext

__all__ = ["Annotation", "CIContext", "Provider", "detect", "providers", "select_provider"]


def __getattr__(name: str) -> Any:
    if name in ("Annotation", "CIContext"):
        from provenance_tasks.ci import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Provider(Protocol):
    """A CI system: whether the environment is one of its jobs, and what that job knows."""

    @property
    def name(self) -> str: ...

    def matches(self, environ: Mapping[str, str]) -> bool: ...

    def context(self, environ: Mapping[str, str]) -> CIContext: ...


def providers(*, cwd: Path | None = None) -> tuple[Provider, ...]:
    """The providers in the order detection tries them; the last one always matches."""
    from provenance_tasks.ci.github import GitHubProvider
    from provenance_tasks.ci.gitlab import GitLabProvider
    from provenance_tasks.ci.local import LocalProvider, UnknownCIProvider

    return (GitLabProvider(), GitHubProvider(), UnknownCIProvider(cwd=cwd), LocalProvider(cwd=cwd))


def select_provider(environ: Mapping[str, str], *, cwd: Path | None = None) -> Provider:
    """The first provider whose CI this environment is (local when none is)."""
    candidates = providers(cwd=cwd)
    return next((p for p in candidates if p.matches(environ)), candidates[-1])


def detect(environ: Mapping[str, str], *, cwd: Path | None = None) -> CIContext:
    """The context of this run; `cwd` is where a local run asks git (default: the current dir).

    Raises InputError naming the variable when the detected CI lacks one it always sets.
    """
    return select_provider(environ, cwd=cwd).context(environ)
