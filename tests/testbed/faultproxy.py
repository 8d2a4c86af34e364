"""A loopback reverse proxy in front of a registry that makes it fail the way real registries do.

Registries fail in production: a load balancer answers 503 while a node restarts, a rate limiter
answers 429 with Retry-After, an idle connection is dropped mid-push, an answer takes a minute, a
whole region is out for a while. The retry policy of this project claims to ride out the transient
ones and to stop at once on the permanent ones (401, 403, an invalid name). A claim like that is
only worth something when the tests prove it against real docker, buildx, containerd, cosign and
crane traffic, so this proxy forwards that traffic to a real registry and injects the faults:

    with FaultProxy(upstream="127.0.0.1:5000", faults=Faults(rate=0.2, seed=1)) as proxy:
        push(f"{proxy.address}/fixture-app:v1")  # one request in five fails
        proxy.outage(5, start_after=r"PUT .*/manifests/")  # a registry that dies mid-push
        proxy.always("403")  # a permission problem no retry can fix
        print(proxy.stats())

With a `shaper` (netprofile.py) it also puts a network profile in front of upstream: latency,
the service's own work and upload bandwidth. It runs in background threads of the test process,
or standalone:

    python -m tests.testbed.faultproxy --upstream 127.0.0.1:5000 --port 0 --rate 0.1

Stdlib only, so the test bed needs nothing beyond what the package already depends on.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import random
import re
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from urllib.parse import urlsplit

from tests.testbed.faults import (
    ANSWERS,
    BAD_GATEWAY,
    HOP_BY_HOP,
    KINDS,
    NO_BODY_STATUSES,
    PIECE,
    Event,
    Faults,
    ProxyServer,
    State,
    Stats,
    status,
)
from tests.testbed.netprofile import Shaper

log = logging.getLogger(__name__)


class _ClientGone(ConnectionError):
    """The client hung up in the middle of its request body: nobody is left to answer."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as every registry client expects
    timeout = 300  # an idle keep-alive client must not pin a thread forever
    server: ProxyServer
    service = "registry"  # what the shaper routed this connection's current request to
    connection_used = False

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s " + format, self.address_string(), *args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        if self.request_version != "HTTP/0.9":
            super().send_error(code, message, explain)
            return
        # No parsable request line: containerd probes loopback registries with a TLS hello first
        # and falls back to plain HTTP only when the answer starts with "HTTP/", as Go's server
        # answers. Python's server would answer HTTP/0.9 style, without a status line.
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.wfile.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Connection: close\r\n\r\n400 Bad Request"
            )

    def _handle(self) -> None:
        state = self.server.state
        method = self.command
        path = urlsplit(self.path).path
        arrived = time.monotonic()
        if self.server.shaper is not None:
            # The network first: a faulted answer crosses it too.
            new_connection, self.connection_used = not self.connection_used, True
            self.service, delay = self.server.shaper.before(
                method, path, new_connection=new_connection
            )
            state.stopping.wait(delay)

        # Recorded before the client gets its answer, so a test that has its answer sees it.
        def note(outcome: str, status: int | None) -> None:
            agent = self.headers.get("User-Agent", "")
            length = int(self.headers.get("Content-Length") or 0)
            state.record(Event(arrived, method, path, outcome, status, agent, length))

        kind = state.decide(method, path)
        if kind is None or kind in ("slow", "lost"):
            if kind == "slow":
                state.stopping.wait(state.faults.slow_seconds)
            self._forward(kind or "forwarded", note, lose_answer=kind == "lost")
            return
        # A real server reads the whole request before it answers on a keep-alive connection.
        for _ in self._body():
            pass
        answer = "503" if kind == "outage" else kind
        note(kind, status(answer))
        self._answer(answer)

    do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = do_OPTIONS = _handle

    def _body(self) -> Iterator[bytes]:
        """The request body, decoded from chunked transfer coding when the client used it, at the
        shaper's bandwidth."""
        shaper = self.server.shaper
        for piece in self._raw_body():
            if shaper is not None:
                self.server.state.stopping.wait(shaper.pace(self.service, len(piece)))
            yield piece

    def _raw_body(self) -> Iterator[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size_line = self.rfile.readline(65537)
                if not size_line:
                    raise _ClientGone("client hung up inside a chunked body")
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers, up to the blank line that ends the body
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(remaining, PIECE))
                    if not piece:
                        raise _ClientGone("client hung up inside a chunk")
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline(3)  # the CRLF after the chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                piece = self.rfile.read(min(remaining, PIECE))
                if not piece:
                    raise _ClientGone("client hung up inside the body")
                remaining -= len(piece)
                yield piece

    def _forward(
        self, outcome: str, note: Callable[[str, int | None], None], *, lose_answer: bool = False
    ) -> None:
        """Send the request upstream and stream the answer back; when upstream fails before it
        answers, the client gets a 502, as from a real load balancer. With `lose_answer`, the
        client gets a 503 in place of upstream's answer."""
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        has_body = chunked or int(self.headers.get("Content-Length") or 0) > 0
        # One upstream connection per request: a stale pooled connection would fail on its own
        # and blur which faults the test injected.
        upstream = http.client.HTTPConnection(self.server.upstream, timeout=300)
        try:
            try:
                upstream.putrequest(
                    self.command, self.path, skip_host=True, skip_accept_encoding=True
                )
                for name, value in self.headers.items():
                    lower = name.lower()
                    if lower in HOP_BY_HOP or (chunked and lower == "content-length"):
                        continue
                    # Host goes through unchanged so the registry's Location headers name the proxy.
                    upstream.putheader(name, value)
                if chunked:
                    upstream.putheader("Transfer-Encoding", "chunked")
                upstream.endheaders()
                if has_body:
                    for piece in self._body():
                        if chunked:
                            upstream.send(b"%x\r\n%b\r\n" % (len(piece), piece))
                        else:
                            upstream.send(piece)
                    if chunked:
                        upstream.send(b"0\r\n\r\n")
                response = upstream.getresponse()
            except _ClientGone:
                note("client-gone", None)
                self.close_connection = True
                return
            except OSError as error:
                log.warning("upstream %s failed: %s", self.server.upstream, error)
                note("upstream-error", 502)
                self._bad_gateway()
                return
            note(outcome, response.status)
            if lose_answer:
                response.read()
                self._answer("503")
                return
            self._relay(response)
        finally:
            upstream.close()

    def _relay(self, response: http.client.HTTPResponse) -> None:
        self.send_response_only(response.status, response.reason)
        body_allowed = self.command != "HEAD" and response.status not in NO_BODY_STATUSES
        rechunk = body_allowed and response.length is None and response.status >= 200
        for name, value in response.getheaders():
            if name.lower() in HOP_BY_HOP:
                continue
            self.send_header(name, value)
        if rechunk:
            if self.request_version == "HTTP/1.1":
                self.send_header("Transfer-Encoding", "chunked")
            else:
                rechunk = False
                self.close_connection = True  # an HTTP/1.0 client reads to the end instead
        self.end_headers()
        if not body_allowed:
            return
        try:
            while True:
                piece = response.read1(PIECE)
                if not piece:
                    break
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece) if rechunk else piece)
            if rechunk:
                self.wfile.write(b"0\r\n\r\n")
        except (http.client.IncompleteRead, OSError) as error:
            # The headers are out: the only honest thing left is to cut the client off.
            log.debug("relay of %s %s cut: %s", self.command, self.path, error)
            self.close_connection = True

    def _answer(self, kind: str) -> None:
        if kind == "drop":
            self.close_connection = True
            return
        if kind == "reset":
            # SO_LINGER 0 makes close() send RST: "connection reset by peer", not a clean EOF.
            # Closed here and now: socketserver's own close would shut down writing (a FIN) first.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            os.close(self.connection.detach())
            self.close_connection = True
            return
        if kind == "502":
            self._bad_gateway()
            return
        status, code, message, extra = ANSWERS[kind]
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode() + b"\n"
        self.send_response_only(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Docker-Distribution-Api-Version", "registry/2.0")
        for name, value in extra.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _bad_gateway(self) -> None:
        self.send_response_only(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(BAD_GATEWAY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(BAD_GATEWAY)


class FaultProxy:
    """The proxy: `start()` it (or use it as a context manager), point clients at `address`."""

    def __init__(
        self,
        upstream: str = "127.0.0.1:5000",
        port: int = 0,
        faults: Faults | None = None,
        shaper: Shaper | None = None,
    ) -> None:
        self.upstream = upstream
        self.shaper = shaper
        self._port = port
        self._state = State(faults or Faults())
        self._server: ProxyServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """host:port to use in image references, e.g. f"{proxy.address}/fixture-app:v1"."""
        if self._server is None:
            raise RuntimeError("the fault proxy is not started")
        return f"127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self.address.rsplit(":", 1)[1])

    def start(self) -> FaultProxy:
        if self._server is not None:
            return self
        self._state.stopping.clear()
        self._server = ProxyServer(self._port, self.upstream, self._state, _Handler)
        self._server.shaper = self.shaper
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"fault-proxy-{self._server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._state.stopping.set()  # wakes requests held by "slow"
        server.shutdown()
        server.server_close()
        server.close_clients()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def set_faults(self, faults: Faults) -> None:
        """Replace the random faults; the random draw restarts from the new seed."""
        with self._state.lock:
            self._state.faults = faults
            self._state.random = random.Random(faults.seed)  # noqa: S311 - not cryptography

    @property
    def faults(self) -> Faults:
        with self._state.lock:
            return self._state.faults

    def always(self, kind: str | None, only: str | None = None) -> None:
        """Answer every request (matching `only`, when given) with `kind`; None turns it off.

        For the permanent failures a client must not retry (401, 403, 400-*), and for the
        transient ones at 100% to see how long a client retries on its own before it gives up.
        """
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}: choose from {', '.join(KINDS)}")
        with self._state.lock:
            self._state.always = kind
            self._state.always_only = re.compile(only) if only else None

    def outage(self, seconds: float, start_after: str | None = None) -> None:
        """Answer every request 503 for `seconds`, from now or from the first request matching
        `start_after` ("METHOD path" regex), which is answered 503 too: a registry that dies in
        the middle of a push. `outage(0)` ends an outage and cancels a pending one."""
        with self._state.lock:
            if start_after is None:
                self._state.outage_pending = None
                self._state.outage_until = time.monotonic() + seconds if seconds > 0 else 0.0
            else:
                self._state.outage_pending = (seconds, re.compile(start_after))

    def stats(self) -> Stats:
        with self._state.lock:
            return Stats(
                seen=self._state.seen,
                forwarded=self._state.forwarded,
                faults=dict(self._state.fault_counts),
                log=list(self._state.log),
            )

    def reset_stats(self) -> None:
        with self._state.lock:
            self._state.seen = self._state.forwarded = 0
            self._state.fault_counts = {}
            self._state.log = []


if __name__ == "__main__":
    from tests.testbed.faultproxy_cli import main

    sys.exit(main())
