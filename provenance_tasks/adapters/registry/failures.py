"""A registry call's failure in the words docker and cosign use, so that one classifier
(causes.classify) reads ours as it reads theirs: its status or network error, the registry's
error codes, and when it asked to be retried."""

from __future__ import annotations

import datetime
import email.utils
import http.client
import socket
import ssl
import urllib.error
import urllib.parse

from provenance_tasks.errors import CommandFailed


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
