"""A cosign call a step makes (sign, verify, the consumer's view), as one request that the images
of a set may share: `Tools.meet(request)` makes it alone for one image, and an image of a set
hands it to the set's meeting (steps/sets/meeting.py), where one call serves several images.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

NO_ANSWER = object()


@dataclass(eq=False)
class Request:
    """One image's call: `run(refs)` does it for any list of references (this image's, or the
    whole group's), and `mine(result, refs)` takes this image's part of a group's result."""

    key: Hashable
    refs: tuple[str, ...]
    run: Callable[[list[str]], Any]
    mine: Callable[[Any, tuple[str, ...]], Any] = field(default=lambda result, refs: result)
    # What the images whose call another one made say of it, given how many shared it.
    note: Callable[[int], None] = field(default=lambda others: None)
    # A failure that is everyone's (a registry down, after its retries): not tried again one
    # image at a time, which would wait out the retries once per image.
    shared: Callable[[BaseException], bool] = field(default=lambda error: False)
    result: Any = NO_ANSWER
    error: BaseException | None = None
    done: bool = False
    since: float = field(default_factory=time.monotonic)
