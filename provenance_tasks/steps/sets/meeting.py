"""The images of a set meet at each cosign call, so one call signs (or verifies) several.

Sixteen images signed one by one are sixteen cosign processes, each starting up and, on cosign 2,
decrypting the key; one `cosign sign` of several references does that once. So an image that
reaches a sign or a verify hands its request to the meeting and waits. When `jobs` requests wait,
or every image still running does, the requests are grouped by what one call must share (the
key, the annotations, the format; the policy for a verify) and each group makes one call, run
by the image that came last; the builds go on beside it. A group whose call fails is tried again
one image at a time, so a failure stays the failing image's own. While an image waits it gives
up its slot: `jobs` bounds the images at work, not those waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

from provenance_tasks.steps.calls import NO_ANSWER, Request

#: How long a request waits for others before its call is made with whoever waits (seconds):
#: with no more images than jobs, the fastest image would otherwise wait for the slowest build.
PATIENCE_S = 1.0


class MeetingCancelled(Exception):
    """The run was cancelled (SIGTERM, ^C): no call is made for an image any more."""


class _Slots:
    """`jobs` slots for images at work. An image back from a meeting takes one before a new
    image may start: else the images not yet started, always waiting, take every slot freed,
    and those already signed wait for every build to end before they verify and publish."""

    def __init__(self, count: int) -> None:
        self._free = count
        self._returning = 0
        self._cv = threading.Condition()

    def take(self, *, returning: bool = False) -> None:
        with self._cv:
            self._returning += returning
            while self._free == 0 or (not returning and self._returning):
                self._cv.wait()
            self._returning -= returning
            self._free -= 1

    def give(self) -> None:
        with self._cv:
            self._free += 1
            self._cv.notify_all()


class Meeting:
    def __init__(self, images: int, jobs: int) -> None:
        self._cv = threading.Condition()
        self._alive = images  # every image is counted from the start: none fires alone
        self._waiting: list[Request] = []
        self._cancelled = False
        self._slots = _Slots(max(1, jobs))
        # A call fires once `jobs` requests wait (or every image still running does): a bigger
        # batch would hold the signing back until every build is done, while cosign 3 signs a
        # call's references one after another, decrypting the key for each (measured: 16 refs
        # in one call take 3.1 s, in two calls beside the builds the run ends sooner).
        self._enough = max(1, jobs)

    @contextmanager
    def image(self) -> Iterator[None]:
        """One image's run: a slot while it works, and its leaving counted when it ends."""
        self._slots.take()
        try:
            yield
        finally:
            self._slots.give()
            self.left()

    def left(self) -> None:
        """An image ended (or never started): if the others all wait, they go now."""
        with self._cv:
            self._alive -= 1
            batch = self._take_if_all_wait()
        self._run(batch)

    def cancel(self) -> None:
        """The run is ending: requests waiting fail, and no new call is made."""
        with self._cv:
            self._cancelled = True
            for request in self._waiting:
                request.error, request.done = MeetingCancelled("the run was cancelled"), True
            self._waiting = []
            self._cv.notify_all()

    def meet(self, request: Request) -> Any:
        """`request` done with every other image's that waits for the same call."""
        self._slots.give()
        try:
            with self._cv:
                if self._cancelled:
                    raise MeetingCancelled("the run was cancelled")
                self._waiting.append(request)
                batch = self._take_if_all_wait()
            self._run(batch)
            while True:
                with self._cv:
                    if not request.done:
                        self._cv.wait(timeout=PATIENCE_S / 4)
                    if request.done:
                        break
                    batch = self._take_if_all_wait(patient=False)
                self._run(batch)
        finally:
            self._slots.take(returning=True)
        if request.error is not None:
            raise request.error
        return request.result

    def _take_if_all_wait(self, *, patient: bool = True) -> list[Request]:
        if self._cancelled or not self._waiting:
            return []
        enough = len(self._waiting) >= min(self._alive, self._enough)
        waited = time.monotonic() - self._waiting[0].since >= PATIENCE_S
        if not (enough or (waited and not patient)):
            return []
        batch, self._waiting = self._waiting, []
        return batch

    def _run(self, batch: list[Request]) -> None:
        if not batch:
            return
        groups: dict[Hashable, list[Request]] = {}
        for request in batch:
            groups.setdefault(request.key, []).append(request)
        try:
            with ThreadPoolExecutor(max_workers=min(len(groups), 4)) as pool:
                list(pool.map(_call, groups.values()))
        finally:
            with self._cv:
                for request in batch:
                    if request.error is None and request.result is NO_ANSWER:
                        # A call that gave this image nothing: never taken for a success.
                        request.error = RuntimeError("the shared cosign call gave no answer")
                    request.done = True
                self._cv.notify_all()


def _call(group: Sequence[Request]) -> None:
    refs = [ref for request in group for ref in request.refs]
    if len(group) > 1 and len(set(refs)) == len(refs):
        try:
            result = group[0].run(refs)
        except Exception as exc:
            if group[0].shared(exc):
                for request in group:
                    request.error = exc
                return
            # else each image again on its own: whose the failure is
        else:
            for request in group:
                try:
                    request.result = request.mine(result, request.refs)
                    request.note(len(group) - 1)
                except BaseException as exc:
                    request.error = exc
            return
    for request in group:
        try:
            request.result = request.mine(request.run(list(request.refs)), request.refs)
        except BaseException as exc:
            request.error = exc
