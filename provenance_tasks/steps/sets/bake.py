"""The builds of a set in one `buildx bake`, started before the images, beside their checks.

Each image's build step (steps/build.py, build_local) takes its OCI layout from the bake when the
bake made it, and builds on its own when not. One broken Dockerfile fails a whole bake: that is
said once, and every image then builds alone, so a failure stays the failing image's own (the
good ones come back from the cache at once). Nothing leaves the machine here, as with one image's
build: a wrong key password found meanwhile still stops the run with nothing pushed.

`provenance.jobs` bounds the images at work on the rest (push, sign, verify, publish); the bake
hands BuildKit every build at once, and BuildKit schedules them. `provenance.bake: false` builds
each image in its own buildx call instead, at most `jobs` at a time.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from provenance_tasks.adapters.docker import BuildRequest
from provenance_tasks.errors import ProvenanceError
from provenance_tasks.steps import build as build_step
from provenance_tasks.steps.build_inputs import SourceFacts, source_facts, work_tree_status
from provenance_tasks.steps.plan import Plan
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.sets.log import ImageLog
from provenance_tasks.steps.sets.tools import image_folder


class SetBuild:
    """One bake of the set's builds, in a thread of its own; each image asks for its result."""

    def __init__(self, requests: Mapping[str, BuildRequest], tools: Tools, log: ImageLog) -> None:
        self._requests = dict(requests)
        self._tools = tools
        self._log = log
        self._done = threading.Event()
        self._built: dict[str, dict[str, Any]] = {}
        self._facts: dict[str, SourceFacts] = {}  # what each image's request was made of
        self.cancel = threading.Event()  # the run ended before the bake: it is ended too
        self._thread = threading.Thread(target=self._bake, name="bake", daemon=True)

    @classmethod
    def start(
        cls, tools: Tools, log: ImageLog, images: Sequence[tuple[str, Run, Plan]]
    ) -> SetBuild | None:
        """The set's bake, started; None where each image builds on its own (one image, a dry
        run, provenance.bake off)."""
        building = [(name, run, p) for name, run, p in images if p.build is not None]
        if len(building) < 2 or any(
            run.settings.dry_run or not run.settings.bake for _, run, _ in building
        ):
            return None
        requests, read = {}, {}
        for name, run, p in building:
            assert p.build is not None
            try:
                facts = source_facts(
                    run,
                    p.build,
                    lambda root: tools.once(
                        ("git status", str(root)), lambda: work_tree_status(root)
                    ),
                )
            except ProvenanceError:
                continue  # the image's own build step raises it again: its own failure
            folder = image_folder(tools, name) / "build"
            folder.mkdir(exist_ok=True)
            requests[name] = build_step.request(run, p.target, p.build, facts, folder)
            read[name] = facts
        if len(requests) < 2:
            return None
        started = cls(requests, tools, log)
        started._facts = read
        started._thread.start()
        return started

    def facts_of(self, name: str) -> SourceFacts | None:
        """The source facts `name`'s request was made of (None: not one of the bake's)."""
        return self._facts.get(name)

    def result(self, name: str, wanted: BuildRequest, cancelled: threading.Event) -> Path | None:
        """The metadata file of `name`'s build, written where its own build would write it;
        None: build alone, since the bake didn't build it (it failed, or couldn't say this
        build) or built something else than `wanted`, the image's own request now."""
        while not self._done.wait(0.1):
            if cancelled.is_set():
                return None  # the image is ending: its own build would be cancelled too
        metadata = self._built.get(name)
        request = self._requests.get(name)
        if metadata is None or request != wanted or request.metadata_file is None:
            return None
        request.metadata_file.write_text(json.dumps(metadata))
        return request.metadata_file

    def stop(self) -> None:
        """The run is over: a bake still running is ended (its buildx killed)."""
        self.cancel.set()
        self._thread.join()

    def _bake(self) -> None:
        from provenance_tasks.adapters import bake

        names = ", ".join(self._requests)
        docker = copy.copy(self._tools.docker)  # the run's engine and config, its own cancel
        docker.cancel = self.cancel
        builder = next(iter(self._requests.values())).builder
        # A bake that can't build the set is no failure of the run: the step ends, said so, and
        # each image builds on its own.
        try:
            title = f"Build {len(self._requests)} images in one bake"
            with self._log.step("bake", title) as record:
                try:
                    self._built = bake.bake(
                        docker,
                        self._requests,
                        self._tools.private_folder(),
                        builder=builder,
                        on_line=self._log.tool_output("build"),
                    )
                    self._log.info(f"built in one buildx bake: {names}")
                except bake.NotBakeable as exc:
                    self._log.info(f"each image builds on its own: {exc}")
                except Exception as exc:  # the images build alone: said, not hidden
                    if build_step.NO_OCI_EXPORTER in getattr(exc, "stderr", ""):
                        build_step.exporter_of(self._tools, builder).missing = True
                        self._log.info(
                            "this builder writes no OCI layout: each image builds on its own, "
                            "loaded into the engine and saved"
                        )
                    elif not self.cancel.is_set():
                        self._log.warning(
                            f"the set's buildx bake failed ({_last_line(exc)}): each image "
                            "builds on its own, so that a failure is the failing image's"
                        )
                record.detail = {"baked": sorted(self._built)}
        finally:
            self._done.set()
            self._log.flush()  # kept whole where the log has sections, as an image's is


def _last_line(error: Exception) -> str:
    stderr = getattr(error, "stderr", "") or str(error)
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
