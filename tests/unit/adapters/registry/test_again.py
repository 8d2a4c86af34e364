"""A registry operation the registry failed in passing, tried again within the call."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from provenance_tasks.adapters.registry.failures import TRIES, again, failure
from provenance_tasks.adapters.registry.traffic import TRAFFIC
from provenance_tasks.errors import CommandFailed

URL = "http://r.test/v2/app/blobs/uploads/"


def failing(*errors: CommandFailed) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []
    left = list(errors)

    def operation() -> str:
        calls.append(1)
        if left:
            raise left.pop(0)
        return "done"

    return calls, operation


def test_a_5xx_or_a_drop_is_tried_again_at_once_and_counted() -> None:
    slept: list[float] = []
    calls, operation = failing(
        failure("PUT", URL, 503, "Service Unavailable"),
        failure("HEAD", URL, None, "unexpected EOF: the server closed the connection"),
    )
    meter = TRAFFIC.meter()
    assert again(operation, sleep=slept.append) == "done"
    meter.close()
    assert len(calls) == 3 and slept == [0.2, 0.4]
    assert meter.read()["retried"] == 2


def test_a_short_retry_after_is_waited_out_a_long_one_or_none_goes_to_the_run() -> None:
    slept: list[float] = []
    calls, operation = failing(failure("HEAD", URL, 429, "Too Many Requests", retry_after="1"))
    assert again(operation, sleep=slept.append) == "done"
    assert slept == [1.0]
    for retry_after in ("30", None):  # the run's policy waits long after a rate limit
        limited = failure("HEAD", URL, 429, "Too Many Requests", retry_after=retry_after)
        calls, operation = failing(limited)
        with pytest.raises(CommandFailed):
            again(operation, sleep=slept.append)
        assert len(calls) == 1


def test_a_refusal_is_never_tried_again_and_tries_are_bounded() -> None:
    calls, operation = failing(failure("PUT", URL, 403, "Forbidden", codes=("DENIED",)))
    with pytest.raises(CommandFailed):
        again(operation, sleep=lambda _: None)
    assert len(calls) == 1
    calls, operation = failing(*[failure("PUT", URL, 503, "Unavailable")] * (TRIES + 1))
    with pytest.raises(CommandFailed):
        again(operation, sleep=lambda _: None)
    assert len(calls) == TRIES
