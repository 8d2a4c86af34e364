"""A registry call's failure in the words docker and cosign use, so that one classifier
(causes.classify) reads ours as it reads theirs: its status or network error, the registry's
error codes, and when it asked to be retried."""

from __future__ import annotations

import datetime
import email.utils
import http.client
import socket
import ssl
import time
import urllib.error
import urllib.parse
from collections.abc import Callable
from typing import TypeVar

from provenance_tasks.errors import CommandFailed

T = TypeVar("T")


def cause_of(exc: BaseException) -> BaseException:
    """What failed: urllib wraps it in a URLError (an ssl.SSLError's own `reason` is a word)."""
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    return reason if isinstance(reason, BaseException) else exc


def reason_of(exc: BaseException) -> str:
    """The failure in the words the retry classifier knows from docker and cosign."""
    cause = cause_of(exc)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, ConnectionResetError | BrokenPipeError):
        return "connection reset by peer"
    if isinstance(cause, http.client.RemoteDisconnected | http.client.IncompleteRead):
        return "unexpected EOF: the server closed the connection"
    if isinstance(cause, socket.timeout | TimeoutError):
        return "i/o timeout"
    if isinstance(cause, ssl.SSLError):
        return f"tls handshake failed: {cause}"
    if isinstance(cause, socket.gaierror):
        return f"no such host: {cause}"
    return f"{type(cause).__name__}: {cause}"


def failure(
    method: str,
    url: str,
    status: int | None,
    reason: str,
    *,
    codes: tuple[str, ...] = (),
    retry_after: str | None = None,
) -> CommandFailed:
    """The failure as a tool's stderr line. `codes` are the registry's own error codes (from an
    error body); without them, the status is told in the words docker would print for it. A
    Retry-After header is passed on as "(retry after Ns)", which the retry policy honours."""
    words = {404: "MANIFEST_UNKNOWN: manifest unknown", 401: "UNAUTHORIZED", 403: "DENIED"}
    url = _public(url)
    line = f"{method} {url}: " + (f"{status} {reason}" if status else reason)
    if codes:
        line += f" ({', '.join(codes)})"
    elif status in words:
        line += f" ({words[status]})"
    seconds = _seconds(retry_after)
    if seconds is not None:
        line += f" (retry after {seconds:g}s)"
    return CommandFailed("registry", [method, url], 1, line + "\n")


def _seconds(retry_after: str | None) -> float | None:
    """Retry-After's delay in seconds, as a number or an HTTP date (RFC 9110 10.2.3)."""
    if not retry_after:
        return None
    value = retry_after.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: the policy's own waits
    if when.tzinfo is None:
        return None
    return max(0.0, (when - datetime.datetime.now(datetime.UTC)).total_seconds())


def asked(answer: http.client.HTTPResponse) -> str | None:
    return answer.getheader("Retry-After")


def _public(url: str) -> str:
    """`url` without its query or any user in it: an upload's Location may carry a signed state,
    or a storage service's pre-signed URL whose signature is as good as a password."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(
        (parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", "")
    )


#: Tries of one registry operation (a blob's HEAD, POST and PUT; a manifest's PUT) within a call.
TRIES = 4
#: A Retry-After up to this long is waited out within the call; a longer one, or a 429 that
#: names no wait, goes to the run's retry policy, whose waits after a rate limit are long.
_SHORT_RETRY_AFTER_S = 5.0


def again(operation: Callable[[], T], *, sleep: Callable[[float], None] = time.sleep) -> T:
    """`operation` tried again at once, a few times, when the registry failed it in passing.

    A push is many requests: retried whole for each failure, it would need every one of them
    to pass in one go (at 20 % faults, 0.8**12: one push in fifteen). The run's retry policy
    still wraps the whole call, and each try again here is counted in the report's traffic.
    """
    from provenance_tasks.adapters.registry.traffic import TRAFFIC

    for attempt in range(1, TRIES + 1):
        try:
            return operation()
        except CommandFailed as exc:
            cause = exc.cause
            asked = cause.retry_after_s
            passing = cause.kind == "transient" or (
                cause.kind == "rate-limited" and asked is not None
            )
            if attempt == TRIES or not passing or (asked or 0.0) > _SHORT_RETRY_AFTER_S:
                raise
            TRAFFIC.tried_again()
            sleep(asked if asked is not None else 0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover
