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

It runs in background threads of the test process, or standalone:

    python -m tests.testbed.faultproxy --upstream 127.0.0.1:5000 --port 0 --rate 0.1

Stdlib only, so the test bed needs nothing beyond what the package already depends on.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import logging
import os
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, NamedTuple
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

# What each kind answers, as a registry (distribution's JSON error body) or a load balancer would.
# Kinds that are not in here ("drop", "reset", "slow") do not answer with an error status at all.
_ANSWERS: dict[str, tuple[int, str, str, dict[str, str]]] = {
    # kind: (status, error code, message, extra headers)
    "503": (503, "UNAVAILABLE", "service unavailable", {}),
    "429": (429, "TOOMANYREQUESTS", "too many requests", {"Retry-After": "1"}),
    "500": (500, "UNKNOWN", "unknown error", {}),
    "401": (
        401,
        "UNAUTHORIZED",
        "authentication required",
        {"WWW-Authenticate": 'Basic realm="fault-proxy"'},
    ),
    "403": (403, "DENIED", "requested access to the resource is denied", {}),
    "400-name-invalid": (400, "NAME_INVALID", "invalid repository name", {}),
    "400-manifest-invalid": (400, "MANIFEST_INVALID", "manifest invalid", {}),
    "404-manifest-unknown": (404, "MANIFEST_UNKNOWN", "manifest unknown", {}),
}
# A load balancer in front of a dead backend answers HTML, not the registry's JSON: clients that
# parse the error body must cope with that too.
_BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
# "lost": the request reaches upstream, which acts on it, and the client gets a 503 instead of the
# answer, so a client that retries replays a request the server already took (Rekor's 409 path).
KINDS = (*_ANSWERS, "502", "drop", "reset", "slow", "lost")
TRANSIENT = ("503", "429", "500", "502", "drop", "reset", "slow", "lost")

# Hop-by-hop headers belong to one connection, never to the other side of a proxy (RFC 9110 7.6.1).
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",  # the server side already answered 100 Continue; upstream must not see it twice
    }
)
_NO_BODY_STATUSES = frozenset({204, 304})
_PIECE = 256 * 1024


@dataclass(frozen=True)
class Faults:
    """Random faults: each request is faulted with probability `rate`, the kind picked by weight.

    `only` is a regex searched in "METHOD path" (path without its query); when set, requests that
    do not match are never faulted, e.g. r"^PUT .*/manifests/" to fail only manifest uploads.
    `seed` makes the draw repeatable for a given order of requests; `limit` caps how many
    requests are faulted in all (None: no cap), e.g. 1 for "only the first matching request".
    """

    rate: float = 0.0
    kinds: Mapping[str, float] = field(
        default_factory=lambda: {"503": 1.0, "429": 1.0, "drop": 1.0}
    )
    slow_seconds: float = 2.0
    seed: int | None = None
    only: str | None = None
    limit: int | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within 0..1, not {self.rate}")
        unknown = sorted(set(self.kinds) - set(KINDS))
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}: choose from {', '.join(KINDS)}")
        if self.rate and not any(w > 0 for w in self.kinds.values()):
            raise ValueError("a non-zero rate needs at least one kind with a positive weight")
        if self.slow_seconds < 0:
            raise ValueError("slow_seconds must not be negative")
        if self.only is not None:
            re.compile(self.only)


class Event(NamedTuple):
    """One request the proxy saw.

    `outcome` is "forwarded", a fault kind ("slow" ones are forwarded too), "outage" (answered 503),
    "upstream-error" (answered 502) or "client-gone" (hung up inside its request body)."""

    time: float  # time.monotonic() when the request arrived
    method: str
    path: str  # without the query: upload state tokens would only get in the way of assertions
    outcome: str
    status: int | None = None  # what the client was answered; None when it got no answer


@dataclass(frozen=True)
class Stats:
    """A snapshot: later requests do not change it.

    `faults` counts per kind what was injected ("outage" for answers of an outage, "slow" for
    delayed requests, which are in `forwarded` too); `log` holds every request in order of answer.
    """

    seen: int
    forwarded: int
    faults: dict[str, int]
    log: list[Event]

    @property
    def faulted(self) -> int:
        return sum(self.faults.values())


class _State:
    """Everything the handler threads share, behind one lock."""

    def __init__(self, faults: Faults) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.faults = faults
        self.random = random.Random(faults.seed)  # noqa: S311 - test faults, not cryptography
        self.always: str | None = None
        self.always_only: re.Pattern[str] | None = None
        self.outage_until = 0.0
        self.outage_pending: tuple[float, re.Pattern[str]] | None = None
        self.seen = 0
        self.forwarded = 0
        self.fault_counts: dict[str, int] = {}
        self.log: list[Event] = []

    def decide(self, method: str, path: str) -> str | None:
        """The fault kind for this request, or None to forward it as it is."""
        line = f"{method} {path}"
        now = time.monotonic()
        with self.lock:
            self.seen += 1
            if self.outage_pending and self.outage_pending[1].search(line):
                self.outage_until = now + self.outage_pending[0]
                self.outage_pending = None
            if now < self.outage_until:
                return "outage"
            if self.always and (self.always_only is None or self.always_only.search(line)):
                return self.always
            faults = self.faults
            if not faults.rate or (faults.only and not re.search(faults.only, line)):
                return None
            if faults.limit is not None and sum(self.fault_counts.values()) >= faults.limit:
                return None
            if self.random.random() >= faults.rate:
                return None
            kinds = [k for k, w in faults.kinds.items() if w > 0]
            return self.random.choices(kinds, weights=[faults.kinds[k] for k in kinds])[0]

    def record(self, event: Event) -> None:
        log.debug("%s %s -> %s %s", event.method, event.path, event.outcome, event.status)
        with self.lock:
            self.log.append(event)
            if event.outcome in ("forwarded", "slow", "lost"):
                self.forwarded += 1
            if event.outcome not in ("forwarded", "upstream-error", "client-gone"):
                self.fault_counts[event.outcome] = self.fault_counts.get(event.outcome, 0) + 1


def _status(kind: str) -> int | None:
    """The status a fault kind answers with; None for the kinds that never answer."""
    if kind in _ANSWERS:
        return _ANSWERS[kind][0]
    return 502 if kind == "502" else None


class _ClientGone(ConnectionError):
    """The client hung up in the middle of its request body: nobody is left to answer."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, port: int, upstream: str, state: _State) -> None:
        self.upstream = upstream
        self.state = state
        self.clients: set[socket.socket] = set()
        self.clients_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), _Handler)

    # The request is a connected socket for a TCP server; typeshed types it for UDP too.
    def process_request(self, request: Any, client_address: Any) -> None:
        with self.clients_lock:
            self.clients.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.clients_lock:
            self.clients.discard(request)
        super().shutdown_request(request)

    def close_clients(self) -> None:
        """Hang up on keep-alive clients, or their handler threads would wait on them forever."""
        with self.clients_lock:
            clients = list(self.clients)
        for client in clients:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that hang up mid-answer are normal under fault injection, not worth a traceback.
        error = sys.exc_info()[1]
        if isinstance(error, OSError):
            log.debug("client %s: %s", client_address, error)
        else:
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as every registry client expects
    timeout = 300  # an idle keep-alive client must not pin a thread forever
    server: _Server

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

        # Recorded before the client gets its answer, so a test that has its answer sees it.
        def note(outcome: str, status: int | None) -> None:
            state.record(Event(arrived, method, path, outcome, status))

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
        note(kind, _status(answer))
        self._answer(answer)

    do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = do_OPTIONS = _handle

    def _body(self) -> Iterator[bytes]:
        """The request body, decoded from chunked transfer coding when the client used it."""
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
                    piece = self.rfile.read(min(remaining, _PIECE))
                    if not piece:
                        raise _ClientGone("client hung up inside a chunk")
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline(3)  # the CRLF after the chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining > 0:
                piece = self.rfile.read(min(remaining, _PIECE))
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
                    if lower in _HOP_BY_HOP or (chunked and lower == "content-length"):
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
        body_allowed = self.command != "HEAD" and response.status not in _NO_BODY_STATUSES
        rechunk = body_allowed and response.length is None and response.status >= 200
        for name, value in response.getheaders():
            if name.lower() in _HOP_BY_HOP:
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
                piece = response.read1(_PIECE)
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
        status, code, message, extra = _ANSWERS[kind]
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
        self.send_header("Content-Length", str(len(_BAD_GATEWAY)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(_BAD_GATEWAY)


class FaultProxy:
    """The proxy: `start()` it (or use it as a context manager), point clients at `address`."""

    def __init__(
        self, upstream: str = "127.0.0.1:5000", port: int = 0, faults: Faults | None = None
    ) -> None:
        self.upstream = upstream
        self._port = port
        self._state = _State(faults or Faults())
        self._server: _Server | None = None
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
        self._server = _Server(self._port, self.upstream, self._state)
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


def _kind_weight(text: str) -> tuple[str, float]:
    kind, _, weight = text.partition("=")
    if kind not in KINDS:
        raise argparse.ArgumentTypeError(f"unknown kind {kind!r}: choose from {', '.join(KINDS)}")
    return kind, float(weight or 1.0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.testbed.faultproxy",
        description="A loopback reverse proxy in front of a registry that injects faults. "
        "Prints the port it listens on, then serves until SIGINT or SIGTERM.",
    )
    parser.add_argument("--upstream", default="127.0.0.1:5000", help="registry host:port (HTTP)")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--rate", type=float, default=0.0, help="share of requests faulted, 0..1")
    parser.add_argument(
        "--kind",
        type=_kind_weight,
        action="append",
        metavar="KIND[=WEIGHT]",
        help=f"fault kind to draw, repeatable (default 503, 429, drop); one of {', '.join(KINDS)}",
    )
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--only", help='regex on "METHOD path" limiting which requests fault')
    parser.add_argument("--always", choices=KINDS, help="answer every request with this kind")
    parser.add_argument("--verbose", "-v", action="store_true", help="log every request")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(message)s",
    )
    faults = Faults(
        rate=args.rate,
        kinds=dict(args.kind) if args.kind else Faults().kinds,
        slow_seconds=args.slow_seconds,
        seed=args.seed,
        only=args.only,
    )
    proxy = FaultProxy(args.upstream, args.port, faults).start()
    if args.always:
        proxy.always(args.always)
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(proxy.port, flush=True)
    done.wait()
    proxy.stop()
    stats = proxy.stats()
    print(
        f"seen {stats.seen}, forwarded {stats.forwarded}, faults {stats.faults}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
