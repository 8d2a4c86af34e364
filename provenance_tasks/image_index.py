"""What an image index holds: its platform manifests, and BuildKit's attestation manifests,
which name a platform of `unknown/unknown` and are never taken for one.

Harbor and podman/CRI-O look a signature up by the platform manifest's digest, not the index's:
each platform is signed and verified by its own digest (steps/platforms.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from provenance_tasks.errors import ToolError

INDEX_TYPES = frozenset(
    {
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    }
)
# How BuildKit marks an attestation manifest in the index, and which manifest it describes.
REFERENCE_TYPE = "vnd.docker.reference.type"
REFERENCE_DIGEST = "vnd.docker.reference.digest"


@dataclass(frozen=True)
class Child:
    digest: str
    platform: str  # os/arch[/variant]; "unknown/unknown" for an attestation
    describes: str | None = None  # an attestation manifest: the digest it is about


@dataclass(frozen=True)
class IndexContents:
    platforms: tuple[Child, ...] = ()
    attestations: tuple[Child, ...] = ()


def is_index(media_type: str | None) -> bool:
    return media_type in INDEX_TYPES


def contents(data: bytes, what: str) -> IndexContents:
    """The platforms and attestations an index's bytes list; ToolError if it isn't one."""
    try:
        index = json.loads(data)
        entries = [e for e in index["manifests"] if isinstance(e, dict)]
    except (ValueError, KeyError, TypeError) as exc:
        raise ToolError(f"{what} is no image index the tool can read") from exc
    platforms: list[Child] = []
    attestations: list[Child] = []
    for entry in entries:
        found = entry.get("platform") or {}
        platform = (
            "/".join(str(found[k]) for k in ("os", "architecture", "variant") if found.get(k))
            or "unknown/unknown"
        )
        annotations = entry.get("annotations") or {}
        digest = str(entry.get("digest", ""))
        if annotations.get(REFERENCE_TYPE) or platform == "unknown/unknown":
            attestations.append(Child(digest, platform, annotations.get(REFERENCE_DIGEST)))
        else:
            platforms.append(Child(digest, platform))
    return IndexContents(tuple(platforms), tuple(attestations))
