"""What a setting is (`Option`), and the groups of tasks that take the same flags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One setting: its key under `provenance`, its default, its help, and the tasks that take it
    as a flag (named `flag`, or the key with dashes). The one place a setting is declared."""

    key: str
    default: Any
    help: str
    tasks: frozenset[str] = frozenset()
    flag: str | None = None  # the flag's parameter name, when it isn't the key

    @property
    def param(self) -> str:
        return self.flag or self.key


#: The tasks, in the groups that take the same flags.
EVERY_TASK = frozenset(
    {
        "login",
        "build",
        "sign",
        "attest",
        "verify",
        "verify-attestation",
        "publish",
        "build-sign-verify",
        "promote",
    }
)
PROMOTES = frozenset({"promote"})
RUNS = EVERY_TASK - {"login", "promote"}  # every task that works on one repository's image
BUILDS = frozenset({"build", "build-sign-verify"})
SIGNS = frozenset({"sign", "attest", "build-sign-verify"})
# promote verifies the source, so it takes what describes the source's signer.
VERIFIES = frozenset({"verify", "verify-attestation", "publish", "build-sign-verify", "promote"})
SIGNS_OR_VERIFIES = SIGNS | VERIFIES
WHOLE_JOB = frozenset({"build-sign-verify"})
#: The tasks that go on from an earlier run's digest (its IMAGE_REF, or --digest).
ON_A_DIGEST = frozenset({"sign", "attest", "verify", "verify-attestation", "publish"})
