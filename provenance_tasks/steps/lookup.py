"""What a tag or digest names at the registry now, read under the retry policy."""

from __future__ import annotations

from provenance_tasks.references import registry_of
from provenance_tasks.retry import RetryLog, with_retries
from provenance_tasks.steps.run import Tools


def read_digest(
    tools: Tools, log: RetryLog, step: str, reference: str, *, lag: bool = False
) -> str:
    """The digest `reference` (a tag or a digest) points at, read at the registry, retried.

    With `lag`, a reference the registry doesn't show yet is waited for briefly (right after a
    push); otherwise that answer is final.
    """
    policy = tools.retry_policy.for_tag_audit() if lag else tools.retry_policy
    return with_retries(
        log,
        policy,
        step,
        f"read {reference}",
        registry_of(reference),
        lambda _: tools.registry.resolve(reference),
    )
