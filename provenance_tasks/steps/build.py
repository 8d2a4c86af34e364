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
from provenance_tasks.references import registry_of, validate_digest
from provenance_tasks.steps import plan
from provenance_tasks.steps.retrying import read_digest, with_retries
from provenance_tasks.steps.session import Session

DRY_RUN_DIGEST = "sha256:" + "0" * 64


@dataclass(frozen=True)
class BuildResult:
    repository: str
    digest: str
    tags: tuple[str, ...]
    media_type: str | None = None

    @property
    def reference(self) -> str:
        return f"{self.repository}@{self.digest}"


def request(session: Session, target: plan.Target, metadata_file: Path) -> BuildRequest:
    s = session.settings
    context, dockerfile = plan.build_inputs(session)
    labels = dict(session.ci.labels)
    labels.setdefault(
        "org.opencontainers.image.created",
        datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    return BuildRequest(
        context=context,
        dockerfile=dockerfile,
        tags=[f"{target.repository}:{tag}" for tag in target.tags],
        build_args=plan.build_args(session),
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


def build(session: Session, target: plan.Target) -> BuildResult:
    with tempfile.TemporaryDirectory(prefix="provenance-build-") as folder:
        metadata_file = Path(folder) / "metadata.json"
        build_request = request(session, target, metadata_file)
        with session.step("build", f"Build and push {target.repository}") as record:
            argv = with_retries(
                session,
                "build",
                f"push to {target.repository}",
                registry_of(target.repository),
                lambda _: session.docker.build(build_request, on_line=session.tool_output("build")),
            )
            if session.settings.dry_run:
                session.log.info("dry-run", command=render(argv, session.redactor))
                return BuildResult(target.repository, DRY_RUN_DIGEST, target.tags)
            digest, media_type = read_metadata(metadata_file)
            record.detail = {"digest": digest}
        result = BuildResult(target.repository, digest, target.tags, media_type)
    session.bind_image(result.repository, result.digest)
    audit_tags(session, result)
    session.results["build"] = result
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


def audit_tags(session: Session, result: BuildResult) -> None:
    """Each pushed tag must point, at the registry, at the digest about to be signed."""
    with session.step("audit", "Check every tag points at the built digest", collapsed=False):
        for tag in result.tags:
            found = read_digest(session, "audit", f"{result.repository}:{tag}", lag=True)
            if found != result.digest:
                raise ToolError(
                    f"{result.repository}:{tag} points at {found}, not the built {result.digest}",
                    hint="another push raced this one; nothing was signed",
                )
