"""SLSA v1 provenance of one build, as the predicate cosign signs into an in-toto statement.

Made from what the run knows, and nothing it guessed: the CI context (source, commit, ref, the
CI configuration that is the builder, the job that ran it), the build's inputs (Dockerfile,
target, platforms, build args that aren't secret) and buildx's metadata. `builder.id` is stable
across runs (for GitLab, `$CI_PROJECT_URL//$CI_CONFIG_PATH`), so a downstream verifier can expect
it; the job URL is the invocation. https://slsa.dev/spec/v1.0/provenance
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from provenance_tasks import __version__

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
#: What our externalParameters mean: the build of one Dockerfile by buildx, from one commit.
BUILD_TYPE = "https://provenance-tasks.dev/buildtypes/buildx/v1"
REVISION, SOURCE = "org.opencontainers.image.revision", "org.opencontainers.image.source"


def builder_id(provider: str, ci_builder: str | None) -> str:
    """The CI's own id of the build configuration, or a name for a machine with no CI."""
    return ci_builder or f"urn:provenance-tasks:builder:{provider}"


def predicate(
    *,
    provider: str,
    labels: Mapping[str, str],
    ci_builder: str | None,
    invocation_id: str,
    source_ref: str | None,
    config_path: str | None = None,
    runner: str | None = None,
    context: Path,
    dockerfile: Path,
    target: str | None,
    platforms: Sequence[str],
    build_args: Mapping[str, str],
    base_images: Sequence[tuple[str, str]],
    started: float,
    finished: float,
) -> dict[str, Any]:
    """The provenance predicate; `base_images` are (reference, digest) pairs buildx reported."""
    source, commit = labels.get(SOURCE), labels.get(REVISION)
    external: dict[str, Any] = {
        "source": source,
        "ref": source_ref,
        "ciConfigPath": config_path,
        "dockerfile": _relative(dockerfile, context),
        "target": target,
        "platforms": list(platforms),
        "buildArgs": dict(build_args),
    }
    version = {"provenance-tasks": __version__, **({"runner": runner} if runner else {})}
    dependencies: list[dict[str, Any]] = []
    if commit:  # the source at its commit (a repository with no remote has no URL to give)
        where = {"uri": f"git+{source}@{source_ref or commit}"} if source else {"name": "source"}
        dependencies.append({**where, "digest": {"gitCommit": commit}})
    for reference, digest in base_images:
        algorithm, _, value = digest.partition(":")
        dependencies.append({"uri": f"pkg:docker/{reference}", "digest": {algorithm: value}})
    return {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {k: v for k, v in external.items() if v not in (None, [], {})},
            "internalParameters": {"provider": provider},
            "resolvedDependencies": dependencies,
        },
        "runDetails": {
            "builder": {
                "id": builder_id(provider, ci_builder),
                "version": version,
            },
            "metadata": {
                "invocationId": invocation_id,
                "startedOn": _iso(started),
                "finishedOn": _iso(finished),
            },
        },
    }


def base_images(metadata: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(reference, digest) of each image the build pulled, from buildx's metadata file: its
    `buildx.build.provenance` materials (when buildx's provenance is on) or the older
    `containerimage.buildinfo` sources. A `FROM scratch` build has none."""
    found: dict[str, str] = {}
    provenance = metadata.get("buildx.build.provenance") or {}
    for material in provenance.get("materials") or []:
        uri, digest = str(material.get("uri", "")), material.get("digest") or {}
        if uri.startswith("pkg:docker/") and digest.get("sha256"):
            found[uri.removeprefix("pkg:docker/")] = f"sha256:{digest['sha256']}"
    for source in (metadata.get("containerimage.buildinfo") or {}).get("sources") or []:
        if source.get("type") == "docker-image" and source.get("pin"):
            found.setdefault(str(source.get("ref")), str(source["pin"]))
    return sorted(found.items())


def _relative(path: Path, base: Path) -> str:
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
