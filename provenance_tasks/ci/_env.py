"""The CI environment, read in one place: which CI a job runs in, and its variables' values.

The providers (github.py, gitlab.py, local.py) read what their CI sets through these helpers,
and the logs ask here which runner reads them (its section markers, masks and colours), so a CI
is recognised by one test wherever it is asked. Only the standard library and errors.py are
imported: the logs import this before a run has detected its CI.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from provenance_tasks.errors import InputError

__all__ = [
    "GITHUB",
    "GITLAB",
    "ID_TOKEN_VARIABLE",
    "CISystem",
    "ci_is_set",
    "get",
    "secrets",
]

#: The variable an OIDC ID token for keyless signing is read from (GitLab's `id_tokens:`, a
#: token passed on by hand, or one set on a laptop).
ID_TOKEN_VARIABLE = "SIGSTORE_ID_TOKEN"  # noqa: S105 - a variable name

#: What `CI` says when a CI system sets it (most do, to "true"; some to "1").
_CI_VALUES = ("true", "1", "yes")


def get(environ: Mapping[str, str], name: str) -> str | None:
    """A variable's value, with empty treated as unset (GitLab sets some variables to "")."""
    value = environ.get(name)
    return value if value else None


def secrets(environ: Mapping[str, str], names: tuple[str, ...]) -> tuple[str, ...]:
    """The values set among `names`, each once, in order: what the redactor must know."""
    values = (get(environ, name) for name in names)
    return tuple(dict.fromkeys(v for v in values if v is not None))


def ci_is_set(environ: Mapping[str, str]) -> bool:
    """`CI` says a CI runs the job: set by many systems, it says nothing about which."""
    return environ.get("CI", "").strip().lower() in _CI_VALUES


@dataclass(frozen=True)
class CISystem:
    """A CI that sets `detector` to exactly "true" in its own jobs, and some variables in
    every one of them (`require`)."""

    detector: str  # GITLAB_CI, GITHUB_ACTIONS
    title: str  # as a message names it
    variables: str  # what its always-set variables are called, for the message of a missing one

    def detected(self, environ: Mapping[str, str]) -> bool:
        return environ.get(self.detector) == "true"

    def require(self, environ: Mapping[str, str], name: str) -> str:
        """A variable this CI sets in every job: unset or empty, it is named in the error
        rather than signed as an empty annotation."""
        value = get(environ, name)
        if value is None:
            raise InputError(
                f"{name} is not set: it is {self.variables}",
                hint=f"outside {self.title}, export {name}=... yourself, or unset "
                f"{self.detector} to run in local mode",
            )
        return value


GITLAB = CISystem("GITLAB_CI", "GitLab", "a GitLab predefined variable, set in every GitLab CI job")
GITHUB = CISystem(
    "GITHUB_ACTIONS",
    "GitHub Actions",
    "a GitHub Actions default variable, set in every workflow run",
)
