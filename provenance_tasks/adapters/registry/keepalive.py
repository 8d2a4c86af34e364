"""HTTP requests to a registry over kept-alive connections, shared by the run's threads.

urllib opens a new connection, and a new TLS handshake, for every request, and closes it after:
one image's push, publish and tag audit are a dozen requests, and a set's images multiply them,
each handshake paid on both sides (the registry's CPU is the run's too, on a CI machine). Here a
connection that the registry keeps open goes back to a pool per scheme and host, and the next
request (of any thread) takes it.

Each answer is read whole before it is handed back (registry answers here are small: manifests,
configs, error bodies; layers go up, never down), so the connection is free at once. A kept
connection is looked at before it is used again: one that the registry has closed meanwhile (its
socket reads as ready: an end of file) is dropped for a new one. One that still fails before any
answer is sent again on a new one only for a GET or a HEAD: a POST, PATCH or PUT the registry may
have acted on is left to the caller's retry, which starts its upload over. Redirects are
followed only to the same scheme and host, and only for GET and HEAD (http.py's rule); a
redirect elsewhere raises UseTheTool. Requests through a proxy stay with urllib (http.py):
it knows the proxy's ways.
"""

from __future__ import annotations

import http.client
import select
import ssl
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from email.message import Message
from typing import BinaryIO

from provenance_tasks.adapters.registry.traffic import TRAFFIC

_REDIRECTS = (301, 302, 303, 307, 308)
_LOOPBACK_HOSTS = ("localhost", "::1")


def _to_storage(old: str, new: str) -> bool:
    """A redirect to another host that a blob's GET may follow: over TLS, or on loopback."""
    before, after = urllib.parse.urlsplit(old), urllib.parse.urlsplit(new)
    if before.netloc == after.netloc:
        return False  # the registry itself: its own rules (`redirected`)
    host = after.hostname or ""
    return after.scheme == "https" or host in _LOOPBACK_HOSTS or host.startswith("127.")


_MAX_REDIRECTS = 10
_IDLE_PER_HOST = 8
# A layer goes up in blocks of this size (http.client's default, 8 KiB, is a TLS record and a
# send call each: 6,400 of them for a 50 MB layer, about twice the CPU).
_BLOCK = 64 * 1024


class Answer:
    """A registry's answer, read whole: what callers use of http.client.HTTPResponse."""

    def __init__(self, status: int, reason: str, headers: Message, data: bytes) -> None:
        self.status, self.reason, self.headers = status, reason, headers
        self._data, self._at = data, 0

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def read(self, amt: int | None = None) -> bytes:
        end = len(self._data) if amt is None or amt < 0 else self._at + amt
        chunk, self._at = self._data[self._at : end], min(end, len(self._data))
        return chunk

    def close(self) -> None:
        self._at = len(self._data)

    def __enter__(self) -> Answer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Pool:
    def __init__(self, tls: Callable[[], ssl.SSLContext]) -> None:
        self._tls = tls
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def send(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        timeout: float,
        body: bytes | BinaryIO | None = None,
        *,
        storage: bool = False,
    ) -> Answer:
        """`method` on `url`; an HTTP error status is the answer, not raised. Raises what
        http.client and ssl raise (http.py says it in the tools' words), and UseTheTool
        (from `redirected`) for a redirect to another host. `storage`: a blob's GET, which a
        registry may send to its storage's pre-signed URL on another host: followed there, as
        docker does, without the registry's Authorization."""
        for _ in range(_MAX_REDIRECTS):
            answer = self._once(method, url, headers, timeout, body)
            location = answer.getheader("Location")
            if answer.status not in _REDIRECTS or not location or method not in ("GET", "HEAD"):
                return answer
            new = urllib.parse.urljoin(url, location)
            if storage and method == "GET" and _to_storage(url, new):
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                url = new
                continue
            url = self.redirected(url, new)
        return answer

    @staticmethod
    def redirected(old: str, new: str) -> str:
        from provenance_tasks.adapters.registry.http import UseTheTool

        before, after = urllib.parse.urlsplit(old), urllib.parse.urlsplit(new)
        if (before.scheme, before.netloc) != (after.scheme, after.netloc):
            raise UseTheTool(f"redirected to {after.scheme}://{after.netloc}")
        return new

    def _once(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        timeout: float,
        body: bytes | BinaryIO | None,
    ) -> Answer:
        parts = urllib.parse.urlsplit(url)
        key = (parts.scheme, parts.netloc)
        path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        connection, reused = self._take(key, timeout)
        try:
            response = _exchange(connection, method, path, headers, body)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            connection.close()
            if not (reused and method in ("GET", "HEAD")):
                raise
            # The registry closed the kept connection as it was taken: a read, sent again.
            connection, _ = self._take(key, timeout, fresh=True)
            try:
                response = _exchange(connection, method, path, headers, body)
            except BaseException:
                connection.close()
                raise
        except BaseException:
            connection.close()
            raise
        try:
            data = response.read()
        except BaseException:
            connection.close()
            raise
        if response.will_close:
            connection.close()
        else:
            self._give(key, connection)
        return Answer(response.status, response.reason, response.headers, data)

    def _take(
        self, key: tuple[str, str], timeout: float, *, fresh: bool = False
    ) -> tuple[http.client.HTTPConnection, bool]:
        with self._lock:
            idle = self._idle.get(key)
            connection = idle.pop() if idle and not fresh else None
        if connection is not None and _dropped(connection):
            connection.close()
            connection = None
        if connection is not None:
            connection.timeout = timeout
            if connection.sock is not None:
                connection.sock.settimeout(timeout)
            return connection, True
        scheme, host = key
        if scheme == "https":
            return http.client.HTTPSConnection(
                host, timeout=timeout, context=self._tls(), blocksize=_BLOCK
            ), False
        return http.client.HTTPConnection(host, timeout=timeout, blocksize=_BLOCK), False

    def _give(self, key: tuple[str, str], connection: http.client.HTTPConnection) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < _IDLE_PER_HOST:
                idle.append(connection)
                return
        connection.close()

    def close(self) -> None:
        with self._lock:
            connections = [c for idle in self._idle.values() for c in idle]
            self._idle.clear()
        for connection in connections:
            connection.close()


def _dropped(connection: http.client.HTTPConnection) -> bool:
    """An idle connection that reads as ready has been closed by the server (an end of file, a
    TLS close_notify) or holds what nobody asked for: either way, not to be used again."""
    sock = connection.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _exchange(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    headers: Mapping[str, str],
    body: bytes | BinaryIO | None,
) -> http.client.HTTPResponse:
    connection.request(method, path, body=body, headers=dict(headers))
    # Counted once sent whole, answered or not: not a TLS hello a plain-HTTP registry refused.
    size = len(body) if isinstance(body, bytes) else int(headers.get("Content-Length") or 0)
    TRAFFIC.count(size if body is not None else 0)
    return connection.getresponse()
