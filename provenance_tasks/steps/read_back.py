"""A signature this run just wrote, read back before it counts.

Right after signing, cosign may read nothing in the format the run signed in: the registry lost
the write, or doesn't show it yet, or cosign 3's read of the referrers failed and it fell back to
the classic signatures. None of that is a verdict on the image. The read is made again with the
tag audit's short waits; nothing in the end is the registry's lost write (exit 4), never a
signature that doesn't satisfy the policy (exit 3).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from provenance_tasks.errors import CommandFailed, ToolError
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.run import Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify_checks import FoundSignature, summarize

# What cosign says when it read no signature at all: of the classic kind, then of bundles.
_NONE_READ = ("no signatures found", "no valid bundles exist")


def none_read(stderr: str) -> bool:
    return any(words in stderr for words in _NONE_READ)


def read_back(
    tools: Tools,
    log: RunLog,
    reference: str,
    fmt: str,
    verify: Callable[[], list[dict[str, Any]]],
    is_registry_failure: Callable[[CommandFailed], bool],
) -> list[FoundSignature]:
    """The signatures in `fmt` that `verify()` (one cosign verify of `reference`) reads,
    looked for until there is one; a verdict cosign gives meanwhile is returned as none read
    (our checks then say what is wrong, exit 3)."""

    def attempt(left: float) -> list[FoundSignature]:
        try:
            payloads = verify()
        except CommandFailed as exc:
            if is_registry_failure(exc) or not none_read(exc.stderr):
                raise
            payloads = []
        found = [sig for sig in map(summarize, payloads) if sig.format == fmt]
        if not found:
            stderr = f"no {fmt} signature read back: manifest unknown (just signed)"
            raise CommandFailed("cosign", ["cosign", "verify", reference], 1, stderr)
        return found

    policy = tools.retry_policy.for_tag_audit()
    what = f"read back the {fmt} signature of {reference}"
    try:
        return with_retries(log, policy, "verify", what, registry_of(reference), attempt)
    except CommandFailed as exc:
        if exc.cause.kind == "not-yet-there":
            raise lost(reference, fmt) from None
        if is_registry_failure(exc):
            raise
        return []  # a signature was read, and refused: the caller's checks say why


def lost(reference: str, fmt: str) -> ToolError:
    return ToolError(
        f"this run signed {reference} in the {fmt} format, but cosign reads no {fmt} signature "
        "there now: the registry lost it or doesn't show it yet",
        hint="run the job again",
    )
