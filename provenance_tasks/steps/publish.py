"""Publish the tags on the verified digest, then check that every tag names it at the registry.

A tag is created or moved by a server-side copy: the manifest at REPO@DIGEST, byte for byte, put
under the tag by the run's registry client (adapters/registry: over HTTP, or `docker buildx
imagetools create` where a credential helper holds the login). build-sign-verify publishes only
after sign and verify passed, so a failure before leaves every tag where it was. The audit then
resolves each tag at the registry: another push racing this one would show there.
"""

from __future__ import annotations

from provenance_tasks.errors import ToolError
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.build import BuildResult
from provenance_tasks.steps.lookup import read_digest
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog


def publish(
    run: Run, tools: Tools, log: RunLog, result: BuildResult, done: list[str]
) -> tuple[str, ...]:
    """Point each of `result.tags` at its digest, adding each to `done` once it is there (a
    failure halfway leaves `done` saying which moved); returns the tags published."""
    image = result.image
    with log.step("publish", f"Publish {', '.join(result.tags)} on {image}") as record:
        for tag in result.tags:
            if run.settings.dry_run:
                log.info(f"dry-run: copy the manifest of {image} to {image.repository}:{tag}")
                continue

            def copy(left: float, tag: str = tag) -> None:
                tools.registry.publish_tag(
                    image.repository,
                    image.digest,
                    tag,
                    timeout=min(left, 60.0),
                    pushed=result.pushed,
                )

            with_retries(
                log,
                tools.retry_policy,
                "publish",
                f"publish {image.repository}:{tag}",
                registry_of(image.repository),
                copy,
            )
            done.append(tag)
        record.detail = {"tags": list(result.tags)}
        if result.staging_tag and not run.settings.dry_run:
            remove_staging_tag(tools, log, result)
    return result.tags


def remove_staging_tag(tools: Tools, log: RunLog, result: BuildResult) -> None:
    from provenance_tasks.adapters.registry import Unserved

    assert result.staging_tag is not None
    why = "the registry can't delete a tag alone (distribution 2.x)"
    try:
        removed = tools.registry.delete_tag(result.repository, result.staging_tag)
    except ToolError as exc:
        removed, why = False, str(exc)
    if isinstance(removed, Unserved):  # a credential helper's login: no tool deletes a tag
        why = removed.why
        removed = False
    if not removed:
        log.warning(
            f"the staging tag {result.staging_tag} stays on {result.repository}: {why}; only "
            "the published tags name a verified image"
        )


def audit_tags(tools: Tools, log: RunLog, result: BuildResult) -> None:
    """Each published tag must point, at the registry, at the digest that was verified."""
    with log.step("audit", "Check every tag points at the verified digest", collapsed=False):
        for tag in result.tags:
            found = read_digest(tools, log, "audit", f"{result.repository}:{tag}", lag=True)
            if found != result.digest:
                raise ToolError(
                    f"{result.repository}:{tag} points at {found}, not {result.digest}",
                    hint="another push raced this one and moved the tag after publishing",
                )
