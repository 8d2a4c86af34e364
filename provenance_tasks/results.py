"""What the steps return to a Python caller: plain, frozen, typed values.

`Provenance` (api.py) hands these back from each call, and its tasks return the same. A set of
images returns a mapping by image name. Each result holds the `Built` image it is about, so a
caller passes one step's result on to the next without a file in between; the full record a
step made stays in `detail` (the step's own dataclass, as the report has it).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from provenance_tasks.models import ImageRef

__all__ = ["Attested", "Built", "Promoted", "Published", "Signed", "Verification"]


@dataclass(frozen=True)
class Built:
    """An image this run built and pushed, by digest.

    `tags` are those to publish once verified; `published` those already moved (a `build`
    without `stage`). `name` is the image's name in a set, else None. `outputs` are the values
    the run wrote to its dotenv for later jobs (IMAGE_REF, PROVENANCE_RUN_ID, ...).
    """

    repository: str
    digest: str
    tags: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    published: tuple[str, ...] = ()
    name: str | None = None
    run_id: str = ""
    staging_tag: str | None = None
    outputs: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def ref(self) -> str:
        """`repository@digest`: what is signed and verified, never a tag."""
        return f"{self.repository}@{self.digest}"

    @property
    def image(self) -> ImageRef:
        return ImageRef(self.repository, self.digest)

    def __str__(self) -> str:
        return self.ref


@dataclass(frozen=True)
class Signed:
    """The signatures made on `image`: one per tag, in `bundle_format`, by `mode`."""

    image: Built
    mode: str
    bundle_format: str
    tlog: bool
    tags: tuple[str, ...]
    platforms: tuple[str, ...] = ()  # the platform manifests signed too (their digests)
    detail: Any = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class Attested:
    """Signed SLSA provenance attached to (or verified on) `image` and each platform."""

    image: Built
    predicate_type: str
    builder_id: str
    subjects: tuple[str, ...]  # the digests attested: the image, then each platform
    problems: tuple[str, ...] = ()
    detail: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class Verification:
    """What `verify` expected of `image`'s signatures, and what it found.

    `expected` holds one mapping of annotations per tag's signature; `found` one entry per
    signature cosign verified (its annotations, subject and format). `problems` is empty when
    the image verified; a call whose verification failed raises VerificationError instead of
    returning one, so a returned Verification is a verified image unless it was a dry run.
    """

    image: Built
    policy: str
    expected: tuple[Mapping[str, Any], ...]
    found: tuple[Mapping[str, Any], ...]
    problems: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    readers: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    dry_run: bool = False
    detail: Any = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.dry_run


@dataclass(frozen=True)
class Published:
    """The tags moved onto `image` after it verified here, each read back from the registry."""

    image: Built
    tags: tuple[str, ...]
    verification: Verification


@dataclass(frozen=True)
class Promoted:
    """`source` verified, copied with its signatures to `image` (same digest, another
    repository), signed there by this run, verified there, then tagged `tags`.

    `source_signer` and `signer` describe both policies (the source's signer, and this run's);
    `verification` is the destination's. A promote whose source fails to verify raises
    VerificationError (exit 3) before anything is copied or tagged.
    """

    source: Built
    image: Built
    tags: tuple[str, ...]
    source_signer: str
    signer: str
    verification: Verification
    dry_run: bool = False
    detail: Any = field(default=None, repr=False, compare=False)
