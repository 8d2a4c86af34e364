"""What the fault proxy (faultproxy.py) injects and records: the fault kinds and their answers,
the random or scheduled draw, the per-request log its tests read, and its listening server.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import socket
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from tests.testbed.netprofile import Shaper

log = logging.getLogger("tests.testbed.faultproxy")

# What each kind answers, as a registry (distribution's JSON error body) or a load balancer would.
# Kinds that are not in here ("drop", "reset", "slow") do not answer with an error status at all.
ANSWERS: dict[str, tuple[int, str, str, dict[str, str]]] = {
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
BAD_GATEWAY = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
# "lost": the request reaches upstream, which acts on it, and the client gets a 503 instead of the
# answer, so a client that retries replays a request the server already took (Rekor's 409 path).
KINDS = (*ANSWERS, "502", "drop", "reset", "slow", "lost")
TRANSIENT = ("503", "429", "500", "502", "drop", "reset", "slow", "lost")

# Hop-by-hop headers belong to one connection, never to the other side of a proxy (RFC 9110 7.6.1).
HOP_BY_HOP = frozenset(
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
NO_BODY_STATUSES = frozenset({204, 304})
PIECE = 256 * 1024


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
    agent: str = ""  # the client's User-Agent: whose request it was (ours, cosign's, buildx's)
    length: int = 0  # the body's declared Content-Length (0 for none, or a chunked one)


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


class State:
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


def status(kind: str) -> int | None:
    """The status a fault kind answers with; None for the kinds that never answer."""
    if kind in ANSWERS:
        return ANSWERS[kind][0]
    return 502 if kind == "502" else None


class ProxyServer(ThreadingHTTPServer):
    """The proxy's listening side: it tracks keep-alive clients so that a stop can hang up."""

    daemon_threads = True
    block_on_close = False
    shaper: Shaper | None = None  # a network profile in front of upstream (netprofile.py)

    def __init__(
        self, port: int, upstream: str, state: State, handler: type[BaseHTTPRequestHandler]
    ) -> None:
        self.upstream = upstream
        self.state = state
        self.clients: set[socket.socket] = set()
        self.clients_lock = threading.Lock()
        super().__init__(("127.0.0.1", port), handler)

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
