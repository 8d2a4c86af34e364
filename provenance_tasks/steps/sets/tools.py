"""The tools of one image of a set: shared with the run's where sharing saves work and can't mix
images up, its own where an image's failure must stay its own. The one-image path calls these
as it calls a run's `Tools`, and never asks whether it is one of a set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.sets.outputs import IMAGE_OUTPUTS

if TYPE_CHECKING:
    from provenance_tasks.adapters.cosign import Cosign
    from provenance_tasks.adapters.docker import BuildRequest
    from provenance_tasks.retry import RetryPolicy
    from provenance_tasks.sigstore import SigstoreInstance
    from provenance_tasks.steps.build_inputs import SourceFacts
    from provenance_tasks.steps.calls import Request
    from provenance_tasks.steps.outputs import Outputs
    from provenance_tasks.steps.sets.bake import SetBuild
    from provenance_tasks.steps.sets.meeting import Meeting
    from provenance_tasks.steps.sigstore_writes import SigstoreWrites

T = TypeVar("T")


class ImageTools(Tools):
    """The tools of one image of a run of many: the run's cosign (probed once), Sigstore,
    retry policy (so a 429 pauses every image), private folders, login and probes, with a
    docker client and a cancel of its own, so one image's failure ends only its own build."""

    def __init__(
        self, run: Run, shared: Tools, *, meeting: Meeting, bake: SetBuild | None = None
    ) -> None:
        super().__init__(run, docker_client=shared.docker_client)
        self.shared = shared
        self._docker_config = shared._docker_config  # made before the images start
        self.indexes = shared.indexes
        self.meeting = meeting  # where the images' cosign calls meet, to be made once
        self.bake = bake  # the set's builds in one bake, if baked

    def meet(self, request: Request) -> Any:
        """The call made once for every image of the set that waits for the same."""
        return self.meeting.meet(request)

    def baked_facts(self) -> SourceFacts | None:
        if self.bake is None or self.run.image_name is None:
            return None
        return self.bake.facts_of(self.run.image_name)

    def baked(self, wanted: BuildRequest) -> Path | None:
        if self.bake is None or self.run.image_name is None:
            return None
        return self.bake.result(self.run.image_name, wanted, self.cancelled)

    @property
    def outputs(self) -> Outputs:
        """The set's: the run reads them for every image before it starts, and writes them."""
        return IMAGE_OUTPUTS

    @property
    def cosign(self) -> Cosign:
        with self.shared.lock:  # one probe, whichever image asks first
            return self.shared.cosign

    @property
    def sigstore(self) -> SigstoreInstance:
        with self.shared.lock:
            return self.shared.sigstore

    @property
    def retry_policy(self) -> RetryPolicy:
        with self.shared.lock:
            return self.shared.retry_policy

    @property
    def sigstore_writes(self) -> SigstoreWrites:
        with self.shared.lock:  # one bound for every image of the run
            return self.shared.sigstore_writes

    def cosign_environment(self, trust: Mapping[str, str] | None = None) -> dict[str, str]:
        with self.shared.lock:  # one TUF cache for the run: the run's folder, not the image's
            return self.shared.cosign_environment(trust)

    def once(self, key: tuple[str, ...], work: Callable[[], T]) -> T:
        return self.shared.once(key, work)

    def private_folder(self) -> Path:
        """The image's own folder in the run's: its build's OCI layout and metadata, its
        statements and key files never meet another image's."""
        return image_folder(self.shared, self.run.image_name or "image")

    def private_docker_config(self) -> Path:
        with self.shared.lock:  # made by the run before the images start: handed back
            return self.shared._docker_config or self.shared.private_docker_config()

    @property
    def docker_config(self) -> Path | None:
        return self.shared.docker_config

    def close(self) -> None:
        """Nothing of its own to remove: the run's tools close what they made."""


def image_folder(shared: Tools, name: str) -> Path:
    """The private folder of the set's image `name` (0700), in the run's."""
    with shared.lock:
        folder = shared.private_folder() / "images" / name
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder
