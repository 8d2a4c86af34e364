"""An OCI image layout folder, read as the list of things to push in the order to push them.

`docker buildx build --output type=oci,dest=DIR,tar=false` writes DIR/index.json naming one image
(an index over platform manifests and attestation manifests, or one manifest) and every blob under
DIR/blobs/ALGORITHM/HEX. A registry accepts a manifest only once what it references is there, so
the walk yields each manifest after its config and layers, and an index after its children.

Everything a registry would refuse later is refused here first, with the file to look at: a digest
that could name a path outside the folder, a missing blob, a manifest whose bytes don't hash to
its digest. Manifests are read whole (they are small, and pushed byte for byte); layers are only
looked at on disk, to be streamed by the push.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance_tasks.errors import ToolError
from provenance_tasks.image_index import INDEX_TYPES

MANIFEST_TYPES = frozenset(
    {
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    }
)
# Only canonical digests: anything else could be a path ("sha256:../../etc") inside blobs/.
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
# What distribution accepts as a manifest (4 MiB): a larger "manifest" is not read into memory.
_MANIFEST_MAX = 4 * 1024 * 1024
# Indexes nest (an index of indexes); content addressing rules out cycles, this rules out abuse.
_DEPTH_MAX = 8


@dataclass(frozen=True)
class Blob:
    """A config or layer blob of the layout, to be streamed from `path`."""

    digest: str
    size: int
    path: Path


@dataclass(frozen=True)
class Manifest:
    """A manifest or index: its exact bytes and the blobs to push before it."""

    digest: str
    media_type: str
    data: bytes
    blobs: tuple[Blob, ...]


@dataclass(frozen=True)
class Layout:
    """The layout's manifests, each once, children first: the root (index.json's entry) last."""

    manifests: tuple[Manifest, ...]

    @property
    def root(self) -> Manifest:
        return self.manifests[-1]


def digest_of(data: bytes, digest: str) -> str:
    """`data`'s digest in the algorithm `digest` uses."""
    algorithm = digest.partition(":")[0]
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def read_layout(folder: Path) -> Layout:
    """The one image of the layout at `folder`, ready to push."""
    index_file = folder / "index.json"
    try:
        index = json.loads(index_file.read_bytes())
    except OSError as exc:
        raise ToolError(
            f"{folder} is not an OCI image layout: cannot read index.json ({exc.strerror})",
            hint="write it with docker buildx build --output type=oci,dest=DIR,tar=false",
        ) from None
    except ValueError:
        raise ToolError(f"{index_file} is not JSON") from None
    entries = index.get("manifests") if isinstance(index, dict) else None
    if not isinstance(entries, list) or len(entries) != 1:
        count = len(entries) if isinstance(entries, list) else 0
        raise ToolError(
            f"{index_file} names {count} images: a push takes a layout of exactly one",
            hint="buildx writes one per build; push each image from its own layout folder",
        )
    walk = _Walk(folder)
    walk.manifest(entries[0], depth=0)
    return Layout(tuple(walk.found))


class _Walk:
    """A depth-first walk that records each manifest after everything it references."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.found: list[Manifest] = []
        self.seen: set[str] = set()

    def manifest(self, descriptor: object, *, depth: int) -> None:
        digest, size, media_type, _ = self._descriptor(descriptor)
        if digest in self.seen:  # an index may list one manifest twice (or share a child)
            return
        if depth > _DEPTH_MAX:
            raise ToolError(f"{self.folder}: indexes nest deeper than {_DEPTH_MAX} levels")
        path = self._path(digest)
        if not path.is_file():
            raise ToolError(f"{self.folder} lacks the manifest {digest} ({media_type})")
        if size > _MANIFEST_MAX or path.stat().st_size != size:
            raise ToolError(f"{path}: {path.stat().st_size} bytes, its descriptor says {size}")
        data = path.read_bytes()
        if digest_of(data, digest) != digest:
            raise ToolError(f"{path} does not hash to its digest {digest}: the layout is damaged")
        try:
            content = json.loads(data)
        except ValueError:
            raise ToolError(f"{path} ({media_type}) is not JSON") from None
        if not isinstance(content, dict):
            raise ToolError(f"{path} ({media_type}) is not a JSON object")
        own = content.get("mediaType")
        if own and own != media_type:
            # The registry parses the bytes by the Content-Type we send: both must agree.
            raise ToolError(f"{path} says it is {own}, its descriptor says {media_type}")
        blobs: list[Blob] = []
        if media_type in INDEX_TYPES:
            children = content.get("manifests")
            if not isinstance(children, list):
                raise ToolError(f"{path} is an index without a list of manifests")
            for child in children:
                self.manifest(child, depth=depth + 1)
        else:
            layers = content.get("layers") or []
            if "config" not in content or not isinstance(layers, list):
                raise ToolError(f"{path} ({media_type}) has no config or no list of layers")
            for referenced in (content["config"], *layers):
                blob = self._blob(referenced)
                if blob is not None and all(b.digest != blob.digest for b in blobs):
                    blobs.append(blob)
        self.seen.add(digest)
        self.found.append(Manifest(digest, media_type, data, tuple(blobs)))

    def _blob(self, descriptor: object) -> Blob | None:
        digest, size, media_type, entry = self._descriptor(descriptor)
        path = self._path(digest)
        if not path.is_file():
            if entry.get("urls"):
                return None  # a foreign layer: pulled from its URLs, never pushed
            raise ToolError(f"{self.folder} lacks the blob {digest} ({media_type})")
        if path.stat().st_size != size:
            raise ToolError(f"{path}: {path.stat().st_size} bytes, its descriptor says {size}")
        return Blob(digest, size, path)

    def _descriptor(self, descriptor: object) -> tuple[str, int, str, dict[str, Any]]:
        if not isinstance(descriptor, dict):
            raise ToolError(f"{self.folder}: a descriptor is not a JSON object: {descriptor!r}")
        digest, size = descriptor.get("digest"), descriptor.get("size")
        media_type = descriptor.get("mediaType")
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise ToolError(f"{self.folder}: {digest!r} is not a sha256 or sha512 digest")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ToolError(f"{self.folder}: the descriptor of {digest} has no valid size")
        if not isinstance(media_type, str) or not media_type:
            raise ToolError(f"{self.folder}: the descriptor of {digest} has no mediaType")
        return digest, size, media_type, descriptor

    def _path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.folder / "blobs" / algorithm / hexdigest
