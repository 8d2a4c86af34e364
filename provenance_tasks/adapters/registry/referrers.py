"""cosign 3's bundles as a client finds them: the OCI referrers API, or its fallback tag.

A registry without the referrers API (distribution 2.8, GHCR, Docker Hub) gets cosign 3's
bundles listed in an index under the tag `sha256-<hex of the subject>` (the distribution spec's
referrers tag schema). go-containerregistry lists each bundle there with the artifactType
`application/vnd.oci.empty.v1+json` (its config's media type) and no annotations
(sigstore/cosign#4641, google/go-containerregistry#2366): `oras discover` shows an "empty"
artifact, and a client that filters referrers by type finds nothing. The spec asks for each
referrer manifest's own artifactType (else its config's media type) and its annotations:
`repair_fallback_index` puts them there.

The requests are http.py's (`fetch`: the run's login, kept-alive connections, plain HTTP on
loopback only) and push.publish_tag's (the PUT, with the push scope); every failure
raises CommandFailed in the words `causes.classify()` reads, as theirs do.

The tag schema has no lock: whoever reads the index, adds to it and puts it back can race
another writer (cosign in another job does the same). The repair reads back what it put and
starts over when the tag changed meanwhile; a writer whose put lands between our read and our
put loses its line in the index (its manifest stays, by digest), a window of one request.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance_tasks.adapters.registry import http, push
from provenance_tasks.adapters.registry.layout import digest_of
from provenance_tasks.errors import ToolError
from provenance_tasks.references import validate_digest, validate_repository

EMPTY = "application/vnd.oci.empty.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
# Any digest will do to ask whether the API is there: a registry that has it answers 200 (an
# empty index) for a subject it doesn't hold. This one is the OCI empty config's.
PROBE_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
_DIGEST = re.compile(r"sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}")
# Rounds of read, type, put and read back before a tag that keeps changing is given up on.
_ROUNDS = 3


@dataclass(frozen=True)
class Referrer:
    """One line of a referrers list: a manifest whose subject is the digest asked about."""

    digest: str
    artifact_type: str | None
    annotations: dict[str, str] = field(default_factory=dict)
    media_type: str = "application/vnd.oci.image.manifest.v1+json"
    size: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifactType": self.artifact_type,
            "digest": self.digest,
            "annotations": dict(self.annotations),
        }


@dataclass(frozen=True)
class Repair:
    """What `repair_fallback_index` found under the tag, and what it changed there."""

    subject: str
    tag: str  # sha256-<hex>
    referrers: tuple[Referrer, ...] = ()  # as the tag lists them now
    found: bool = True  # the tag was there (else: nothing to repair, nothing written)
    # (digest, what the index said before: the empty type, or None for no type at all)
    typed: tuple[tuple[str, str | None], ...] = ()
    # missing from the tag: listed by the referrers API, or by the tag itself earlier in the run
    added: tuple[str, ...] = ()
    left: tuple[str, ...] = ()  # not typeable: the manifest is gone, or names no type itself
    rewritten: bool = False

    def describe(self) -> str:
        """One line for the log: "fallback index sha256-…: 2 referrers, 1 typed (was empty)"."""
        if not self.found:
            return f"fallback index {self.tag}: absent, nothing to repair"
        count = len(self.referrers)
        parts = [f"{count} referrer{'' if count == 1 else 's'}"]
        if self.added:
            parts.append(f"{len(self.added)} listed again (the API's, or lost from the tag)")
        if self.typed:
            was = sorted({"empty" if before == EMPTY else "untyped" for _, before in self.typed})
            parts.append(f"{len(self.typed)} typed (was {' or '.join(was)})")
        if self.left:
            parts.append(f"{len(self.left)} left as listed (no manifest or no type to read)")
        if not self.typed and not self.added:
            parts.append("already typed, nothing written")
        return f"fallback index {self.tag}: " + ", ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "tag": self.tag,
            "found": self.found,
            "rewritten": self.rewritten,
            "referrers": [r.as_dict() for r in self.referrers],
            "typed": [{"digest": d, "was": before} for d, before in self.typed],
            "added": list(self.added),
            "left": list(self.left),
        }


def fallback_tag(digest: str) -> str:
    """The referrers tag schema's tag of `digest`: `<alg>-<hex>`, cut to 32 and 64 characters."""
    algorithm, _, value = digest.partition(":")
    return f"{algorithm[:32]}-{value[:64]}"


def has_referrers_api(
    repository: str, digest: str, *, config_dir: Path | None, timeout: float = 30.0
) -> bool:
    """The registry answers the referrers API: 200 with an index. A 404 (distribution 2.8's
    "page not found") says it has none; any other answer raises CommandFailed."""
    validate_repository(repository, "the repository")
    validate_digest(digest, "the subject digest")
    found = http.fetch(
        f"{repository}@{digest}", config_dir=config_dir, kind="referrers", timeout=timeout
    )
    # A 200 that is no index (a catch-all page) is no API either.
    return found is not None and _index(found[1]) is not None


def referrers_of(
    repository: str, digest: str, *, config_dir: Path | None, timeout: float = 30.0
) -> tuple[Referrer, ...]:
    """The referrers a client sees of `digest`: the API's list where the registry has one, else
    the fallback tag's (none when that tag is absent)."""
    validate_repository(repository, "the repository")
    validate_digest(digest, "the subject digest")
    found = http.fetch(
        f"{repository}@{digest}", config_dir=config_dir, kind="referrers", timeout=timeout
    )
    index = _index(found[1]) if found is not None else None
    if index is None:
        found = http.fetch(
            f"{repository}:{fallback_tag(digest)}", config_dir=config_dir, timeout=timeout
        )
        index = _index(found[1]) if found is not None else None
    return _listed(index) if index is not None else ()


def repair_fallback_index(
    repository: str,
    subject_digest: str,
    *,
    config_dir: Path | None,
    listed: Sequence[Referrer] = (),
    timeout: float = 30.0,
) -> Repair:
    """Give each referrer in the fallback index of `subject_digest` its manifest's artifactType
    and annotations, where the index says none or the empty type; put the index back under its
    tag only when something changed, then read it back and check it.

    `listed`: referrers the API lists (provenance.referrers `tag` on a registry that has it),
    added to the index where it lacks them, the index made if the tag is absent.
    """
    validate_repository(repository, "the repository")
    validate_digest(subject_digest, "the subject digest")
    tag = fallback_tag(subject_digest)
    reference = f"{repository}:{tag}"
    typed: dict[str, str | None] = {}
    added: dict[str, None] = {}
    rewritten = False
    for _ in range(_ROUNDS):
        found = http.fetch(reference, config_dir=config_dir, timeout=timeout)
        if found is None and not listed:
            return Repair(subject_digest, tag, found=False, rewritten=rewritten)
        media_type, index = _as_index(reference, found)
        new = _add_missing(index, listed)
        changed, left = _type(repository, index, config_dir, timeout)
        added.update(dict.fromkeys(new))
        typed.update(changed)
        if not changed and not new:
            return _repair(subject_digest, tag, index, typed, added, left, rewritten)
        data = json.dumps(index, separators=(",", ":")).encode()
        digest = _sha256(data)
        push.publish_tag(
            repository,
            digest,
            tag,
            config_dir=config_dir,
            timeout=timeout,
            pushed=(media_type, data),
        )
        rewritten = True
        now = http.fetch(reference, config_dir=config_dir, timeout=timeout)
        if now is not None and _sha256(now[1]) == digest:
            _check_typed(reference, index, left)
            return _repair(subject_digest, tag, index, typed, added, left, rewritten)
        # Another writer's index, or the registry still shows the old one: read it again.
    raise ToolError(
        f"the fallback index {reference} kept changing while it was being repaired",
        hint="another job writes referrers of the same digest at the same time; run this one "
        "again once it is done",
    )


def _as_index(reference: str, found: tuple[str, bytes] | None) -> tuple[str, dict[str, Any]]:
    """The media type and parsed index under the tag; a new, empty index when it is absent."""
    if found is None:
        return INDEX, {"schemaVersion": 2, "mediaType": INDEX, "manifests": []}
    index = _index(found[1])
    if index is None:
        raise ToolError(
            f"{reference} is not an OCI image index: not a referrers tag this can repair",
            hint="the tag sha256-<digest> is the referrers fallback of the OCI distribution "
            "spec; something else was put there",
        )
    # Put back as what it says it is: a registry checks the Content-Type against that.
    return str(index.get("mediaType") or found[0] or INDEX), index


def _add_missing(index: dict[str, Any], listed: Sequence[Referrer]) -> list[str]:
    """Append the API's referrers that the index lacks; returns their digests."""
    present = {d.get("digest") for d in index["manifests"]}
    new = []
    for referrer in listed:
        if referrer.digest in present:
            continue
        descriptor: dict[str, Any] = {
            "mediaType": referrer.media_type,
            "digest": referrer.digest,
            "size": referrer.size,
        }
        if referrer.artifact_type:
            descriptor["artifactType"] = referrer.artifact_type
        if referrer.annotations:
            descriptor["annotations"] = dict(referrer.annotations)
        index["manifests"].append(descriptor)
        present.add(referrer.digest)
        new.append(referrer.digest)
    return new


def _type(
    repository: str, index: dict[str, Any], config_dir: Path | None, timeout: float
) -> tuple[dict[str, str | None], list[str]]:
    """Type each descriptor that says none (or the empty type) from its manifest, in place;
    returns those typed, with what they said before, and those that can't be typed."""
    typed: dict[str, str | None] = {}
    left: list[str] = []
    for descriptor in index["manifests"]:
        before = descriptor.get("artifactType")
        if before and before != EMPTY:
            continue
        digest = str(descriptor.get("digest") or "")
        manifest = (
            _manifest(repository, digest, config_dir, timeout)
            if _DIGEST.fullmatch(digest)
            else None
        )
        real = _artifact_type(manifest) if manifest is not None else None
        if real is None or real == EMPTY:
            left.append(digest)
            continue
        descriptor["artifactType"] = real
        annotations = manifest.get("annotations") if manifest is not None else None
        if isinstance(annotations, dict) and annotations:
            descriptor["annotations"] = annotations
        typed[digest] = before or None
    return typed, left


def _manifest(
    repository: str, digest: str, config_dir: Path | None, timeout: float
) -> dict[str, Any] | None:
    """The referrer manifest `digest`, checked against it; None when the registry lost it."""
    found = http.fetch(f"{repository}@{digest}", config_dir=config_dir, timeout=timeout)
    if found is None:
        return None
    if digest_of(found[1], digest) != digest:
        raise ToolError(
            f"the registry's {repository}@{digest} hashes to "
            f"{digest_of(found[1], digest)}: a registry or proxy that lies"
        )
    try:
        manifest = json.loads(found[1])
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def _artifact_type(manifest: dict[str, Any]) -> str | None:
    """The spec's rule: the manifest's artifactType, else its config's media type."""
    declared = manifest.get("artifactType")
    if isinstance(declared, str) and declared:
        return declared
    config = manifest.get("config")
    media_type = config.get("mediaType") if isinstance(config, dict) else None
    return media_type if isinstance(media_type, str) and media_type else None


def _check_typed(reference: str, index: dict[str, Any], left: list[str]) -> None:
    """What was put (and read back, the same digest) types every referrer it could."""
    untyped = [
        d.get("digest")
        for d in index["manifests"]
        if d.get("digest") not in left and d.get("artifactType") in (None, "", EMPTY)
    ]
    if untyped:
        raise ToolError(f"{reference} still lists {', '.join(map(str, untyped))} untyped")


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _index(data: bytes) -> dict[str, Any] | None:
    try:
        index = json.loads(data)
    except ValueError:
        return None
    if not isinstance(index, dict) or not isinstance(index.get("manifests"), list):
        return None
    if not all(isinstance(d, dict) for d in index["manifests"]):
        return None
    return index


def _listed(index: dict[str, Any]) -> tuple[Referrer, ...]:
    return tuple(
        Referrer(
            digest=str(d.get("digest") or ""),
            artifact_type=d.get("artifactType") or None,
            annotations=dict(d.get("annotations") or {}),
            media_type=str(d.get("mediaType") or ""),
            size=d["size"] if isinstance(d.get("size"), int) else 0,
        )
        for d in index["manifests"]
    )


def _repair(
    subject: str,
    tag: str,
    index: dict[str, Any],
    typed: dict[str, str | None],
    added: dict[str, None],
    left: list[str],
    rewritten: bool,
) -> Repair:
    return Repair(
        subject,
        tag,
        _listed(index),
        True,
        tuple(typed.items()),
        tuple(added),
        tuple(left),
        rewritten,
    )
