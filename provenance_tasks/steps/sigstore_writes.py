"""How many signing cosign processes a run keeps going at once, and how many transparency-log
writes it makes in any one minute.

A set's images sign side by side, and so do sign and attest of one digest (beside.py). Public
Rekor takes about 500 writes a minute from one client, and a private Fulcio or Rekor may take far
fewer requests at once. Each sign or attest attempt takes a slot first (`sigstore_jobs`), and
counts one log write per reference it signs (`rekor_writes_per_minute`, in a sliding minute); an
attempt that would go past either waits, and says so. Without the log (`tlog: false`) nothing is
written to it, and only the slots apply. 0 turns either bound off.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from provenance_tasks.errors import CommandFailed

WINDOW_S = 60.0
T = TypeVar("T")


class SigstoreWrites:
    def __init__(
        self,
        jobs: int,
        per_minute: int,
        cancelled: threading.Event,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.jobs, self.per_minute = jobs, per_minute
        self._cancelled = cancelled
        self._clock = clock
        self._cv = threading.Condition()
        self._running = 0
        self._written: collections.deque[float] = collections.deque()  # one time per write

    @contextmanager
    def slot(self, writes: int) -> Iterator[float]:
        """Hold a slot for one attempt that writes `writes` log entries; yields the seconds it
        waited for it."""
        begun = self._clock()
        with self._cv:
            while not self._free(writes):
                if self._cancelled.is_set():  # the run gave up: this attempt never starts
                    raise CommandFailed("cosign", ["cosign"], -9, "cosign: cancelled by the run")
                self._cv.wait(timeout=self._next_change())
            self._running += 1
            now = self._clock()
            self._written.extend([now] * writes)
        try:
            yield now - begun
        finally:
            with self._cv:
                self._running -= 1
                self._cv.notify_all()

    def _free(self, writes: int) -> bool:
        if self.jobs and self._running >= self.jobs:
            return False
        if not self.per_minute or not writes:
            return True
        now = self._clock()
        while self._written and now - self._written[0] >= WINDOW_S:
            self._written.popleft()
        # One attempt of more references than the budget still goes, alone in its minute.
        return not self._written or len(self._written) + writes <= self.per_minute

    def _next_change(self) -> float:
        """How long a waiter may sleep: until the oldest write leaves the minute (a slot given
        back wakes it sooner), and never so long that a cancel goes unnoticed."""
        if self._written:
            left = WINDOW_S - (self._clock() - self._written[0])
            return max(0.01, min(left, 0.5))
        return 0.5


class _Log(Protocol):
    def info(self, event: str, **fields: Any) -> None: ...


def within(
    bound: SigstoreWrites, log: _Log, step: str, writes: int, call: Callable[[float], T]
) -> Callable[[float], T]:
    """`call` (one attempt of a sign or an attest) made only once `bound` gives it a slot; a
    wait is said in the log, so that a slow step is never a mystery."""

    def attempt(left: float) -> T:
        with bound.slot(writes) as waited:
            if waited >= 0.05:
                log.info(
                    f"{step}: waited {waited:.1f}s for a Sigstore slot (sigstore_jobs "
                    f"{bound.jobs}, rekor_writes_per_minute {bound.per_minute})",
                    step=step,
                    wait_s=round(waited, 2),
                )
            return call(max(left - waited, 1.0))

    return attempt
