"""Keep secrets out of every line we print, report or raise.

Every secret value the run learns (tokens, passwords from the environment or flags) is added to one
Redactor; every text that leaves the process through logs, reports, dry-run lines or error messages
passes through `redact()` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

MASK = "[MASKED]"

#: Environment variables whose values are secrets wherever they appear.
SECRET_VARIABLES = (
    "CI_JOB_TOKEN",
    "CI_REGISTRY_PASSWORD",
    "SIGSTORE_ID_TOKEN",
    "COSIGN_PASSWORD",
    "GITHUB_TOKEN",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN",
    "ACTIONS_RUNTIME_TOKEN",
    "REGISTRY_PASSWORD",
)

# Shorter values would mask ordinary words ("1", "true") and tell an attacker nothing anyway.
_MIN_LENGTH = 4


def secret_spec_variables(specs: Iterable[str]) -> list[str]:
    """The variables buildx --secret specs read ("id=npm,env=NPM_TOKEN"): their values are
    secrets too, declared so by being passed as build secrets."""
    names = []
    for spec in specs:
        for part in spec.split(","):
            key, _, value = part.partition("=")
            if key.strip() == "env" and value.strip():
                names.append(value.strip())
    return names


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for value in secrets:
            self.add(value)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], extra: Iterable[str] = ()) -> Redactor:
        names = set(SECRET_VARIABLES) | set(extra)
        return cls(environ[name] for name in names if environ.get(name))

    def add(self, value: str | None) -> None:
        if value and len(value) >= _MIN_LENGTH:
            self._secrets.add(value)
            # Tools quote, strip or split values; mask the stripped line too.
            stripped = value.strip()
            if len(stripped) >= _MIN_LENGTH:
                self._secrets.add(stripped)

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def redact(self, text: str) -> str:
        # Longest first, so a secret that contains another is masked whole.
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, MASK)
        return text

    def redact_argv(self, argv: Iterable[str]) -> list[str]:
        return [self.redact(str(arg)) for arg in argv]
