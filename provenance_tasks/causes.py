"""Why a failed tool or registry call failed, read from its stderr, and whether it can pass.

The CLIs we drive (docker, buildx, containerd, cosign) show neither the status line nor a
Retry-After header in any structured way, so `classify()` reads their exit and stderr; our own
registry adapter writes its failures in the same words (adapters/registry/failures.py). No
tenacity here: CommandFailed.cause reads this on any failure, retried or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from provenance_tasks.errors import CommandFailed

# What each kind of failure looks like in docker, buildx, containerd and cosign stderr.
_PERMANENT: tuple[tuple[str, str], ...] = (
    (r"\b401\b|unauthorized|authentication required|no basic auth credentials", "unauthorized"),
    (r"\b403\b|denied|insufficient_scope|forbidden", "denied"),
    (
        r"name_invalid|invalid repository name|invalid reference format|must be lowercase",
        "name invalid",
    ),
    (r"manifest_invalid|manifest invalid", "manifest invalid"),
    # dockerd retries a loopback registry over plain HTTP after a refused HTTPS login, and
    # reports that second answer: a 400 from a login is a refused login.
    (r"login attempt to \S+ failed with status: 400", "unauthorized"),
    # The run ended the process itself (process.run's cancel): never worth another attempt.
    (r"cancelled by the run", "cancelled"),
)
_RATE_LIMITED = r"\b429\b|toomanyrequests|too many requests|rate limit"
# Rekor answers 409 to a body it already holds: cosign's own HTTP retry replays an upload whose
# answer was lost, and cosign 3 then fails (cosign#4851; or its fetch of the entry finds nothing
# yet). Nothing reached the registry: a new attempt signs anew, a new entry.
_TLOG_CONFLICT = (
    r"createLogEntryConflict|equivalent entry already exists|getLogEntryByUuidNotFound",
    "Rekor already holds this entry (409)",
)
# BuildKit can keep a cache record whose snapshot is gone (moby/buildkit#6977; here after a
# failing bake ended the set's other builds mid-export): a build without the cache passes.
SNAPSHOT_LOST = "BuildKit lost a snapshot"
_SNAPSHOT_RACE = (r"snapshot \S+ does not exist: not found", SNAPSHOT_LOST)
_TRANSIENT: tuple[tuple[str, str], ...] = (
    (r"\b50[0-4]\b|unavailable|bad gateway|gateway time-?out|internal server error", "5xx"),
    (r"\b408\b|request timeout", "request timeout"),
    (r"connection refused", "connection refused"),
    (r"connection reset|broken pipe|closed network connection|server closed", "connection reset"),
    (r"\beof\b|unexpected eof", "connection dropped (EOF)"),
    (r"timeout|timed out|deadline exceeded|killed after", "timeout"),
    (r"no route to host|network is unreachable|temporary failure in name resolution", "network"),
    (r"tls handshake", "TLS handshake"),
    # cosign's own HTTP client gave up on 5xx answers, or lost the answer of one (sigstore-go)
    (r"giving up after \d+ attempt|read on closed response body", "kept failing"),
)
# Right after a push a tag can be a moment away at the registry (read-after-write lag).
_NOT_YET_THERE = r"manifest_unknown|manifest unknown|name_unknown|name unknown|: not found$"
# GHCR answers a throttled push with a 403: "403 Forbidden ... secondary rate limit". It is a rate
# limit, not a refusal, and comes before the 403 rule; every other 403 still fails at once.
_SECONDARY_RATE_LIMIT = (r"secondary rate limit", "rate limited (403)")
_KINDS = (
    ("rate-limited", (_SECONDARY_RATE_LIMIT,)),
    ("transient", (_TLOG_CONFLICT, _SNAPSHOT_RACE)),
    ("permanent", _PERMANENT),
    ("rate-limited", ((_RATE_LIMITED, "rate limited (429)"),)),
    ("not-yet-there", ((_NOT_YET_THERE, "not found (yet)"),)),
    ("transient", _TRANSIENT),
)
# A dropped connection is most often that one connection's (an idle cut by a proxy or a load
# balancer, a node going away): a new one usually works at once.
_SAID_NOTHING = frozenset({"connection reset", "connection dropped (EOF)"})
# How our registry adapter (registry/failures.py) passes on a Retry-After header.
_RETRY_AFTER = re.compile(r"\(retry after (\d+(?:\.\d+)?)s\)")
# How far back from the end of stderr a cause is looked for.
_TAIL = 12


#: Kinds of failure that are the registry's, not a verdict on the image or the signature.
REGISTRY_FAILURES = frozenset({"transient", "rate-limited", "permanent"})


def outlasted_retries(error: BaseException) -> bool:
    """A call failed because its service kept failing (retries spent), not for what it named."""
    return isinstance(error, CommandFailed) and error.cause.kind in ("transient", "rate-limited")


@dataclass(frozen=True)
class Cause:
    """Why a call failed, in one short phrase, and whether another attempt can help."""

    kind: str  # transient, rate-limited, not-yet-there, permanent, unknown
    reason: str
    line: str = ""  # the stderr line that told us
    service: str | None = None  # the Sigstore service that failed; None: the registry
    retry_after_s: float | None = None  # what the registry's Retry-After asked, when it said

    @property
    def said_nothing(self) -> bool:
        """The connection ended with no answer at all: no status, no Retry-After to go by."""
        return self.reason in _SAID_NOTHING

    @property
    def describe(self) -> str:
        return f"{self.reason}: {self.line}" if self.line else self.reason


def classify(stderr: str, returncode: int | None = None) -> Cause:
    """The cause of a failed tool run, read from the end of its stderr.

    The verdict is in the last lines (buildx prints the whole build log before it): the last line
    that names any cause decides, and within one line a permanent cause wins over a transient one.
    """
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines[-_TAIL:]):
        cause = _classify_line(line)
        if cause is not None:
            return cause
    if returncode is not None and returncode < 0:
        return Cause("transient", f"killed by signal {-returncode}")
    return Cause("unknown", "unrecognised failure", lines[-1][:300] if lines else "")


def _classify_line(line: str) -> Cause | None:
    # Digests and ports are long digit runs; a status code stands alone.
    text = re.sub(r"sha256[:-][0-9a-f]+|:\d{4,5}\b", "", line)
    for kind, patterns in _KINDS:
        for pattern, reason in patterns:
            if re.search(pattern, text, re.IGNORECASE):
                after = _RETRY_AFTER.search(line)
                asked = float(after.group(1)) if after else None
                return Cause(kind, reason, line[:300], service_of(text), asked)
    return None


# How cosign names the Sigstore service a failed call went to (both majors' wording).
_SERVICES = (
    (r"fulcio|signingcert|getting signer", "Fulcio"),
    (r"rekor|/log/entries|tlog|transparency log", "Rekor"),
    (r"timestamp", "the timestamp authority"),
    (r"signing bundle", "Sigstore (Fulcio, Rekor or the timestamp authority)"),
)


def service_of(line: str) -> str | None:
    """The Sigstore service a cosign error line names, or None when it names none (a registry)."""
    for pattern, name in _SERVICES:
        if re.search(pattern, line, re.IGNORECASE):
            return name
    return None
