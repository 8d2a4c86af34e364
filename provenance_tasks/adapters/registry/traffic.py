"""What the tool's own registry client sent: requests and uploaded bytes, for the report.

cosign's and buildx's traffic never passes through here: they are other processes. Every request
of http.py is counted once it was sent whole (keepalive's exchange; through a proxy, urllib's, once
answered), a redirect followed or a stale connection's read sent again as one more; a TLS hello
that a plain-HTTP registry refused is no request. A `Meter` is one run's
view: what was counted while it was open. Two runs open at once in one process (the API, two
threads) would count each other's requests, so a meter that overlapped another says so instead
of giving a number that is not its own.
"""

from __future__ import annotations

import threading
from typing import Any


class Traffic:
    """The process's counters, and which meters are open on them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.uploaded_bytes = 0
        self.retried = 0  # operations tried again within a call (failures.again)
        self._open: set[Meter] = set()

    def count(self, uploaded: int) -> None:
        with self._lock:
            self.requests += 1
            self.uploaded_bytes += uploaded

    def tried_again(self) -> None:
        with self._lock:
            self.retried += 1

    def meter(self) -> Meter:
        """A meter from now on; close it when its run ends."""
        with self._lock:
            meter = Meter(self, self.requests, self.uploaded_bytes, self.retried)
            for other in self._open:
                other.overlapped = meter.overlapped = True
            self._open.add(meter)
        return meter

    def _closed(self, meter: Meter) -> None:
        with self._lock:
            self._open.discard(meter)

    def _now(self) -> tuple[int, int, int]:
        with self._lock:
            return self.requests, self.uploaded_bytes, self.retried


class Meter:
    """One run's share of the counters, from its opening until it is read."""

    def __init__(self, traffic: Traffic, requests: int, uploaded_bytes: int, retried: int) -> None:
        self._traffic = traffic
        self._start = (requests, uploaded_bytes, retried)
        self.overlapped = False

    def read(self) -> dict[str, Any]:
        """The report's `registry_traffic`: the run's own requests and bytes, or why not."""
        scope = "the tool's own registry requests (cosign's and buildx's are not seen)"
        if self.overlapped:
            return {
                "requests": None,
                "uploaded_bytes": None,
                "retried": None,
                "counted": "not counted: another run was open in this process at the same time",
            }
        requests, uploaded, retried = self._traffic._now()
        return {
            "requests": requests - self._start[0],
            "uploaded_bytes": uploaded - self._start[1],
            # Operations the registry failed in passing, tried again at once within a call.
            "retried": retried - self._start[2],
            "counted": scope,
        }

    def close(self) -> None:
        self._traffic._closed(self)


#: The process's one set of counters: http.py's requests all go through one pool.
TRAFFIC = Traffic()
