"""A signature this run just wrote, read back before it counts: none read in the end is the
registry's lost write (exit 4), a verdict cosign gives meanwhile stays a verdict."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace
from typing import Any

import pytest

from provenance_tasks.errors import CommandFailed
from provenance_tasks.redaction import Redactor
from provenance_tasks.retry import RetryPolicy
from provenance_tasks.steps.read_back import read_back
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify_checks import NEW_BUNDLE_TYPE

REF = "registry.example.com/app@sha256:" + "a" * 64
CLASSIC = {"critical": {"type": "cosign container image signature"}, "optional": {}}
BUNDLE = {"critical": {"type": NEW_BUNDLE_TYPE}, "optional": {"tag": "v1"}}


def tools() -> Any:
    audit = dataclasses.replace(RetryPolicy(jitter=lambda: 0.0).for_tag_audit(), wait_s=0.0)
    return SimpleNamespace(retry_policy=SimpleNamespace(for_tag_audit=lambda: audit))


def answers(*results: Any) -> Any:
    """A cosign verify that gives each of `results` in turn (an exception is raised)."""
    pending = list(results)

    def verify() -> list[dict[str, Any]]:
        result = pending.pop(0) if len(pending) > 1 else pending[0]
        if isinstance(result, BaseException):
            raise result
        return list(result)

    return verify


def failed(stderr: str) -> CommandFailed:
    return CommandFailed("cosign", ["cosign", "verify", REF], 1, stderr)


def registry(exc: CommandFailed) -> bool:
    return exc.cause.kind in ("transient", "rate-limited", "permanent")


def log() -> RunLog:
    return RunLog({}, "console", None, Redactor([]))


def test_a_bundle_cosign_missed_once_is_found_when_read_again() -> None:
    verify = answers([CLASSIC], failed("Error: no valid bundles exist in registry"), [BUNDLE])
    found = read_back(tools(), log(), REF, "new", verify, registry)
    assert [sig.format for sig in found] == ["new"]


def test_none_read_to_the_end_is_the_registrys_lost_write_exit_4() -> None:
    verify = answers([CLASSIC], failed("Error: no signatures found"))
    with pytest.raises(Exception) as raised:
        read_back(tools(), log(), REF, "new", verify, registry)
    assert getattr(raised.value, "exit_code", None) == 4
    assert "lost it or doesn't show it yet" in str(raised.value)


def test_a_verdict_meanwhile_is_no_lost_write() -> None:
    verify = answers(failed("Error: no matching signatures: crypto/ecdsa: verification error"))
    assert read_back(tools(), log(), REF, "new", verify, registry) == []
