"""buildx for a step: its call, retried under the run's policy, and what it wrote to its
metadata file (the image's digest, never read from `docker inspect`)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from provenance_tasks.adapters.docker import BuildRequest
from provenance_tasks.causes import SNAPSHOT_LOST
from provenance_tasks.errors import CommandFailed, ToolError
from provenance_tasks.references import registry_of, validate_digest
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.run import Tools
from provenance_tasks.steps.runlog import RunLog


def buildx(tools: Tools, log: RunLog, build_request: BuildRequest, what: str) -> list[str]:
    """`build_request` run by buildx under the run's retry policy; its redacted argv."""
    asked = [build_request]

    def attempt(_: float) -> list[str]:
        try:
            return tools.docker.build(asked[0], on_line=log.tool_output("build"))
        except CommandFailed as exc:
            # BuildKit can keep a cache record whose snapshot it lost (seen after a failing
            # bake ended the set's other builds): every build from that cache fails alike, so
            # the next attempt builds without it.
            if exc.cause.reason == SNAPSHOT_LOST and not asked[0].no_cache:
                log.warning(
                    f"{what}: BuildKit lost a cached snapshot; building again without its cache"
                )
                asked[0] = replace(asked[0], no_cache=True)
            raise

    return with_retries(
        log,
        tools.retry_policy,
        "build",
        what,
        registry_of(build_request.tags[0]) if build_request.tags else "the builder",
        attempt,
    )


def metadata_of(path: Path) -> dict[str, object]:
    try:
        metadata = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ToolError(
            f"buildx wrote no metadata to {path.name}",
            hint="use a buildx that supports --metadata-file (0.13 or newer)",
        ) from exc
    return metadata if isinstance(metadata, dict) else {}


def read_metadata(path: Path) -> tuple[str, str | None]:
    metadata = metadata_of(path)
    digest = metadata.get("containerimage.digest")
    if not isinstance(digest, str):
        raise ToolError(
            f"buildx wrote no image digest to {path.name}",
            hint="use a buildx that supports --metadata-file (0.13 or newer)",
        )
    descriptor = metadata.get("containerimage.descriptor")
    media_type = descriptor.get("mediaType") if isinstance(descriptor, dict) else None
    return validate_digest(digest, "buildx metadata"), media_type
