"""Build with buildx, push to every tag, and take the digest from buildx's own metadata.

Never `docker inspect ... RepoDigests 0`: once the same image was pushed to two repositories, it
names the other one. After the push every tag is resolved at the registry and must point at the
digest about to be signed.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from provenance_tasks.adapters.docker import BuildRequest
from provenance_tasks.adapters.process import render
from provenance_tasks.errors import ToolError
from provenance_tasks.models import ImageRef, Target
from provenance_tasks.references import registry_of, validate_digest
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.lookup import read_digest
from provenance_tasks.steps.plan import BuildInputs
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog

DRY_RUN_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class BuildResult:
    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str | None = None

    @property
    def image(self) -> ImageRef:
        return ImageRef(self.repository, self.digest)


def request(run: Run, target: Target, inputs: BuildInputs, metadata_file: Path) -> BuildRequest:
    s = run.settings
    labels = dict(run.ci.labels)
    labels.setdefault(
        "org.opencontainers.image.created",
        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return BuildRequest(
        context=inputs.context,
        dockerfile=inputs.dockerfile,
        tags=[f"{target.repository}:{tag}" for tag in target.tags],
        build_args=inputs.build_args,
        labels=labels,
        platforms=s.platforms,
        target=s.target,
        builder=s.builder,
        pull=s.pull,
        cache_from=s.cache_from,
        cache_to=s.cache_to,
        secrets=s.secrets,
        metadata_file=metadata_file,
        provenance=s.provenance,
    )


def build(run: Run, tools: Tools, log: RunLog, target: Target, inputs: BuildInputs) -> BuildResult:
    with tempfile.TemporaryDirectory(prefix="provenance-build-") as folder:
        metadata_file = Path(folder) / "metadata.json"
        build_request = request(run, target, inputs, metadata_file)
        with log.step("build", f"Build and push {target.repository}") as record:
            argv = with_retries(
                log,
                tools.retry_policy,
                "build",
                f"push to {target.repository}",
                registry_of(target.repository),
                lambda _: tools.docker.build(build_request, on_line=log.tool_output("build")),
            )
            if run.settings.dry_run:
                log.info("dry-run", command=render(argv, run.redactor))
                return BuildResult(target.repository, DRY_RUN_DIGEST, target.tags)
            digest, media_type = read_metadata(metadata_file)
            record.detail = {"digest": digest}
        result = BuildResult(target.repository, digest, target.tags, media_type)
    log.bind_image(result.repository, result.digest)
    audit_tags(tools, log, result)
    log.results.build = result
    return result


def read_metadata(path: Path) -> tuple[str, str | None]:
    try:
        metadata = json.loads(path.read_text())
        digest = metadata["containerimage.digest"]
    except (OSError, ValueError, KeyError) as exc:
        raise ToolError(
            f"buildx wrote no image digest to {path.name}",
            hint="use a buildx that supports --metadata-file (0.13 or newer)",
        ) from exc
    media_type = (metadata.get("containerimage.descriptor") or {}).get("mediaType")
    return validate_digest(digest, "buildx metadata"), media_type


def audit_tags(tools: Tools, log: RunLog, result: BuildResult) -> None:
    """Each pushed tag must point, at the registry, at the digest about to be signed."""
    with log.step("audit", "Check every tag points at the built digest", collapsed=False):
        for tag in result.tags:
            found = read_digest(tools, log, "audit", f"{result.repository}:{tag}", lag=True)
            if found != result.digest:
                raise ToolError(
                    f"{result.repository}:{tag} points at {found}, not the built {result.digest}",
                    hint="another push raced this one; nothing was signed",
                )
