"""Two Sigstore steps of one digest side by side: sign and attest, then verify and
verify-attestation. Each waits on Fulcio and Rekor, so in series a keyless run waits for two
certificates and two Rekor writes one after the other; side by side, for the slower of each pair.

What stays:
- nothing is published before both steps of the pair are done and every result verified: the
  pipeline publishes after `pair()` returns, and it returns only when both succeeded;
- a failure of either stops the run. The other side is awaited, not cancelled: its result is a
  real one (a policy failure it finds is reported, never hidden behind a cancellation), the
  staging tag is removed with the run's tools still usable, and the wait is bounded by that
  side's own retry budget. ^C and SIGTERM end both at once (the run's `tools.cancelled`);
- writes to one digest's referrers never overlap (`shares_referrers`): cosign lists new bundles
  in the digest's fallback index tag `sha256-<hex>` on a registry without the OCI referrers API,
  and two writers that read, change and rewrite that tag at once lose an entry.

Each side has its own retry loop (`with_retries` keeps its budget per call) and its own log: the
second side's lines are kept until the first side is done, then printed, then live (the log's
`deferred()`), so a step's section never interleaves with the other's.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from provenance_tasks.errors import CommandFailed, VerificationError
from provenance_tasks.settings import Settings
from provenance_tasks.steps.run import Tools
from provenance_tasks.steps.runlog import RunLog

A = TypeVar("A")
B = TypeVar("B")


def shares_referrers(settings: Settings, index: str) -> str | None:
    """Why sign and attest of one digest must write one after the other, or None when their
    writes are disjoint: classic signatures go to the `.sig` tag and attestations to `.att`; new
    bundles are each their own manifest, listed by the registry itself only where it has the
    referrers API, which preflight checked only for provenance.referrers api (auto and tag
    write or repair the fallback index `index`). cosign 2's new-format attestations are
    referrers too."""
    if settings.bundle_format == "classic":
        return None
    if settings.referrers == "api":
        return None
    return (
        f"both list bundles in the fallback index {index} "
        f"(provenance.bundle_format {settings.bundle_format}, "
        f"provenance.referrers {settings.referrers})"
    )


def first_failure(errors: list[Exception | None]) -> Exception | None:
    """The failure a pair ends the run with: a signature that fails the policy first (exit 3
    must never be hidden), then the first side's (sign, verify) before the second's, and a
    tool the run cancelled last."""
    failed = [error for error in errors if error is not None]

    def rank(error: Exception) -> int:
        if isinstance(error, VerificationError):
            return 0
        if isinstance(error, CommandFailed) and error.cause.reason == "cancelled":
            return 2
        return 1

    return min(failed, key=rank) if failed else None  # min is stable: the first of a rank


def pair(
    tools: Tools,
    log: RunLog,
    first: Callable[[RunLog], A],
    second: Callable[[RunLog], B],
    *,
    name: str,
) -> tuple[A, B]:
    """`first(log)` on this thread and `second(its own log)` on another, at once; both awaited.
    Raises the pair's failure (first_failure) once both ended."""
    beside = log.deferred()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
    later = pool.submit(second, beside)
    errors: list[Exception | None] = [None, None]
    results: list[object] = [None, None]
    try:
        try:
            results[0] = first(log)
        except Exception as exc:
            errors[0] = exc
        beside.go_live(log)  # the first side's sections are closed: the second's print whole
        try:
            results[1] = later.result()
        except Exception as exc:
            errors[1] = exc
    except BaseException:
        tools.cancelled.set()  # ^C or SIGTERM: the other side's cosign ends now too
        raise
    finally:
        pool.shutdown(wait=True)
        beside.go_live(log)  # after ^C too: what it did is in the log
    failure = first_failure(errors)
    if failure is not None:
        raise failure
    return results[0], results[1]  # type: ignore[return-value]
