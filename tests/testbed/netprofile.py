"""What a registry and Sigstore cost when they are not on loopback: latency, the service's own
work and upload bandwidth, put in front of them by the fault proxy, and accounted for.

    shaper = Shaper(load("cloud").sigstore)
    with FaultProxy(upstream=sigstore_host, shaper=shaper) as proxy:
        sign_through(proxy.address)
    shaper.stats()["rekor-write"].delay  # the seconds it held Rekor's writes back

The test bed serves Fulcio, Rekor and the TSA on one port, so one proxy routes them by path.
The profiles are assumptions with their sources, checked into `bench/profiles.toml`. Tests read
the shaper's own accounting (the delay it applied, the bytes it passed), never a wall clock.
"""

from __future__ import annotations

import re
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

PROFILES = Path(__file__).resolve().parents[2] / "bench" / "profiles.toml"

# "METHOD path" of the test bed's Sigstore (tests/testbed/sigstore/server.js), first match wins.
SIGSTORE_ROUTES = (
    ("fulcio", re.compile(r"^POST /api/v[12]/signingCert$")),
    ("rekor-write", re.compile(r"^POST /api/v[12]/log/entries$")),
    ("rekor", re.compile(r"^\w+ /api/v[12]/(log|index)/")),
    ("tsa", re.compile(r"^POST /api/v1/timestamp$")),
    ("probe", re.compile(r"^GET /$")),  # is anything there: provenance-tasks' preflight
)
SERVICES = ("registry", "fulcio", "rekor-write", "rekor", "tsa", "probe", "other")


@dataclass(frozen=True)
class Link:
    """One upstream as a client far from it sees it. Seconds and bits per second."""

    rtt: float = 0.0  # a round trip: once per request, and `handshake` more per new connection
    handshake: int = 2  # round trips to open a connection: TCP's, then TLS 1.3's
    up_bits: float | None = None  # the client's upload bandwidth; None: loopback's
    fulcio: float = 0.0  # issuing a certificate, on top of its round trip
    rekor_write: float = 0.0  # a log entry's inclusion
    tsa: float = 0.0  # a signed timestamp

    def work(self, service: str) -> float:
        return {"fulcio": self.fulcio, "rekor-write": self.rekor_write, "tsa": self.tsa}.get(
            service, 0.0
        )


@dataclass(frozen=True)
class Profile:
    name: str
    registry: Link
    sigstore: Link


def load(name: str, path: Path = PROFILES) -> Profile:
    """A named profile of `bench/profiles.toml`; ValueError names the known ones."""
    table = tomllib.loads(path.read_text())
    if name not in table:
        raise ValueError(f"no network profile {name!r}: choose from {', '.join(table)}")

    def link(fields: dict[str, float]) -> Link:
        unknown = set(fields) - {"rtt_ms", "up_mbit", "fulcio_ms", "rekor_write_ms", "tsa_ms"}
        if unknown:
            raise ValueError(f"profile {name!r}: unknown fields {sorted(unknown)}")
        up = fields.get("up_mbit")
        return Link(
            rtt=fields.get("rtt_ms", 0) / 1000,
            up_bits=up * 1_000_000 if up else None,
            fulcio=fields.get("fulcio_ms", 0) / 1000,
            rekor_write=fields.get("rekor_write_ms", 0) / 1000,
            tsa=fields.get("tsa_ms", 0) / 1000,
        )

    profile = table[name]
    return Profile(name, link(profile.get("registry", {})), link(profile.get("sigstore", {})))


@dataclass
class Service:
    """What went through the proxy for one service, and what the shaper made it cost."""

    requests: int = 0
    connections: int = 0  # requests that opened a connection
    up_bytes: int = 0  # request bodies passed upstream
    delay: float = 0.0  # seconds of round trips and service work applied
    paced: float = 0.0  # seconds the upload waited for bandwidth


@dataclass
class Shaper:
    """Applies one `Link` to every request through a proxy. `route` names the service of a
    request: "registry" for a registry's proxy, by path for Sigstore's."""

    link: Link
    sigstore: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _services: dict[str, Service] = field(default_factory=dict, repr=False)
    _link_free_at: float = field(default=0.0, repr=False)

    def route(self, method: str, path: str) -> str:
        if not self.sigstore:
            return "registry"
        line = f"{method} {path}"
        return next((name for name, rule in SIGSTORE_ROUTES if rule.search(line)), "other")

    def before(self, method: str, path: str, *, new_connection: bool) -> tuple[str, float]:
        """The request's service and the seconds to hold it before it goes upstream."""
        service = self.route(method, path)
        round_trips = 1 + (self.link.handshake if new_connection else 0)
        delay = self.link.rtt * round_trips + self.link.work(service)
        with self._lock:
            seen = self._services.setdefault(service, Service())
            seen.requests += 1
            seen.connections += new_connection
            seen.delay += delay
        return service, delay

    def pace(self, service: str, size: int) -> float:
        """Seconds to wait before passing `size` uploaded bytes on. One link for every
        connection, as a runner's uplink is: concurrent uploads share it."""
        wait = 0.0
        with self._lock:
            self._services.setdefault(service, Service()).up_bytes += size
            if self.link.up_bits:
                now = time.monotonic()
                start = max(now, self._link_free_at)
                self._link_free_at = start + size * 8 / self.link.up_bits
                wait = self._link_free_at - now
                self._services[service].paced += size * 8 / self.link.up_bits
        return wait

    def stats(self) -> dict[str, Service]:
        """A copy, by service."""
        with self._lock:
            return {name: Service(**vars(seen)) for name, seen in self._services.items()}

    def reset(self) -> None:
        with self._lock:
            self._services.clear()
