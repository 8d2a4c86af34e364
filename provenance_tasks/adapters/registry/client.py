"""`Registry`: the one way a run reaches a registry, over its HTTP API, imagetools behind it.

The HTTP client (http.py, push.py, referrers.py) answers in a few milliseconds what
`docker buildx imagetools` answers by starting two processes, and pushes an OCI layout by digest,
which no docker command does. It knows only the login `docker login` stores in the docker config.
Where it can't serve (`UseTheTool`: a credential helper or an identity token holds the login, a
redirect or an upload location on another origin), this client asks imagetools instead, through
the run's docker (adapters/docker.py), which knows what docker knows: for a digest, a manifest,
and a tag copied onto a digest. Nothing is logged for that: the answer is the same.

What imagetools has no command for (a layout pushed by digest, a blob, a tag deleted alone, the
referrers) comes back as `Unserved`, with the reason: the caller decides (buildx pushes instead,
the check is skipped, the referrers are left as cosign listed them). The steps never see
`UseTheTool`.

A failure of either path raises CommandFailed (or ToolError), in the words `causes.classify()`
reads: the steps wrap each call in `with_retries`, as before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from provenance_tasks.adapters.registry import copy, http, push, referrers
from provenance_tasks.adapters.registry.copy import Copied
from provenance_tasks.adapters.registry.http import UseTheTool
from provenance_tasks.adapters.registry.push import PushedImage
from provenance_tasks.adapters.registry.referrers import Referrer, Repair
from provenance_tasks.errors import ToolError

T = TypeVar("T")


class Imagetools(Protocol):
    """What the client asks `docker buildx imagetools` (adapters/docker.Docker does it)."""

    def resolve(self, reference: str) -> str:
        """The digest `reference` names at the registry."""

    def manifest(self, reference: str) -> tuple[str, bytes]:
        """The media type and bytes of the manifest `reference` names."""

    def copy_image(self, source: str, tag: str) -> None:
        """The manifest at `source` (REPO@DIGEST) put under `tag`, as it is."""


@dataclass(frozen=True)
class Unserved:
    """A call the HTTP client can't make at this registry, and imagetools has no command for.

    `why`: the registry whose login a credential helper holds, or where a redirect pointed.
    """

    why: str

    def __str__(self) -> str:
        return self.why


class Registry:
    """The registry calls of one run, with the logins of its docker config folder.

    `config_dir`: the docker config to read logins from (None: the job's DOCKER_CONFIG or
    ~/.docker). `imagetools`: gives the run's docker when the HTTP path can't serve a call that
    imagetools can (made only then); without it, such a call raises ToolError.
    """

    def __init__(
        self, config_dir: Path | None, *, imagetools: Callable[[], Imagetools] | None = None
    ) -> None:
        self.config_dir = config_dir
        self._imagetools = imagetools

    # --- reads ------------------------------------------------------------------------------

    def resolve(self, reference: str, *, timeout: float = 30.0) -> str:
        """The digest `reference` (REPO:TAG or REPO@DIGEST) names at the registry now."""
        try:
            return http.manifest_digest(reference, config_dir=self.config_dir, timeout=timeout)
        except UseTheTool as exc:
            return self._tool(exc).resolve(reference)

    def manifest(self, reference: str, *, timeout: float = 30.0) -> tuple[str, bytes]:
        """The media type and exact bytes of the manifest or index `reference` names."""
        try:
            return http.read_manifest(reference, config_dir=self.config_dir, timeout=timeout)
        except UseTheTool as exc:
            return self._tool(exc).manifest(reference)

    def blob(self, reference: str, *, timeout: float = 30.0) -> bytes | Unserved:
        """The bytes of the blob REPO@DIGEST (an image config), checked against its digest."""
        return self._http(
            lambda: http.read_blob(reference, config_dir=self.config_dir, timeout=timeout)
        )

    # --- writes -----------------------------------------------------------------------------

    def push_layout(
        self, layout: Path, repository: str, *, timeout: float = 60.0
    ) -> PushedImage | Unserved:
        """The one image of the OCI layout folder `layout` pushed to `repository`, by digest
        only (push.py): no docker command pushes a layout without a tag, so never imagetools."""
        return self._http(
            lambda: push.push_layout(
                layout, repository, config_dir=self.config_dir, timeout=timeout
            )
        )

    def publish_tag(
        self,
        repository: str,
        digest: str,
        tag: str,
        *,
        timeout: float = 30.0,
        pushed: tuple[str, bytes] | None = None,
    ) -> None:
        """Point `tag` at the manifest `digest`, its bytes as they are (push.publish_tag, or
        `imagetools create --prefer-index=false`)."""
        try:
            push.publish_tag(
                repository,
                digest,
                tag,
                config_dir=self.config_dir,
                timeout=timeout,
                pushed=pushed,
            )
        except UseTheTool as exc:
            self._tool(exc).copy_image(f"{repository}@{digest}", f"{repository}:{tag}")

    def copy(
        self,
        source: str,
        reference: str,
        destination: str,
        *,
        tag: str | None = None,
        spool: Path | None = None,
        timeout: float = 60.0,
    ) -> Copied | Unserved | None:
        """`source`'s manifest `reference` (a digest or a tag) and everything it references
        copied to `destination` by digest, `tag` put on it there too (copy.py); None when the
        source has no such tag. HTTP only: imagetools can't copy a manifest without a tag."""
        return self._http(
            lambda: copy.copy_tree(
                source,
                reference,
                destination,
                config_dir=self.config_dir,
                spool=spool,
                timeout=timeout,
                tag=tag,
            )
        )

    def delete_tag(self, repository: str, tag: str, *, timeout: float = 30.0) -> bool | Unserved:
        """Remove `tag` alone; False when the registry can't delete by tag (distribution 2.x)."""
        return self._http(
            lambda: push.delete_tag(repository, tag, config_dir=self.config_dir, timeout=timeout)
        )

    # --- referrers (referrers.py) -----------------------------------------------------------

    def has_referrers_api(
        self, repository: str, digest: str, *, timeout: float = 30.0
    ) -> bool | Unserved:
        """The registry answers the OCI referrers API."""
        return self._http(
            lambda: referrers.has_referrers_api(
                repository, digest, config_dir=self.config_dir, timeout=timeout
            )
        )

    def referrers_of(
        self, repository: str, digest: str, *, timeout: float = 30.0
    ) -> tuple[Referrer, ...] | Unserved:
        """The referrers a client sees of `digest`: the API's list, else the fallback tag's."""
        return self._http(
            lambda: referrers.referrers_of(
                repository, digest, config_dir=self.config_dir, timeout=timeout
            )
        )

    def repair_fallback_index(
        self,
        repository: str,
        subject_digest: str,
        *,
        listed: Sequence[Referrer] = (),
        timeout: float = 30.0,
    ) -> Repair | Unserved:
        """The fallback index of `subject_digest` typed, listing `listed` too."""
        return self._http(
            lambda: referrers.repair_fallback_index(
                repository,
                subject_digest,
                config_dir=self.config_dir,
                listed=listed,
                timeout=timeout,
            )
        )

    # ----------------------------------------------------------------------------------------

    @staticmethod
    def _http(call: Callable[[], T]) -> T | Unserved:
        try:
            return call()
        except UseTheTool as exc:
            return Unserved(str(exc))

    def _tool(self, exc: UseTheTool) -> Imagetools:
        if self._imagetools is None:
            raise ToolError(
                f"the registry's HTTP API can't be used here ({exc}), and this client has no "
                "imagetools to ask instead",
                hint="make the Registry with imagetools= the run's docker",
            ) from None
        return self._imagetools()
