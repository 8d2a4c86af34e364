"""Build with buildx, then push the image by its digest; the digest comes from buildx's metadata.

Never `docker inspect ... RepoDigests 0`: once the same image was pushed to two repositories, it
names the other one.

The build writes an OCI layout on this machine and pushes nothing, so it can run while the
preflight still checks the signing key: a wrong password stops the run with nothing pushed, and
the build's time is not added to the check's. The push then puts the image at REPO@DIGEST with
no tag (adapters/registry/push.py); steps/publish.py moves the tags once it is signed and
verified. The classic engine's docker driver has no OCI exporter: the image is loaded into the
engine, saved, and made into the layout here (adapters/docker_archive.py). Where a layout can't
be pushed (a credential helper holds the login), buildx pushes to a per-run staging tag instead,
and says so.
"""

from __future__ import annotations

import json
import secrets
from contextlib import suppress
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from provenance_tasks.adapters.docker import BuildRequest
from provenance_tasks.adapters.process import render
from provenance_tasks.errors import CommandFailed, InputError, ProvenanceError, ToolError
from provenance_tasks.models import ImageRef, Target
from provenance_tasks.references import registry_of, validate_digest
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.build_inputs import (
    CREATED,
    EPOCH_ARG,
    BuildInputs,
    SourceFacts,
    source_facts,
    work_tree_status,
)
from provenance_tasks.steps.buildx import buildx, metadata_of, read_metadata
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog

DRY_RUN_DIGEST = "sha256:" + "0" * 64
# buildx's words when the builder can't write an OCI layout (docker driver, classic image store).
NO_OCI_EXPORTER = "OCI exporter is not supported"


@dataclass(frozen=True)
class LocalBuild:
    """What the build left on this machine: an OCI layout, or nothing to push from (staging)."""

    layout: Path | None
    digest: str | None
    facts: SourceFacts
    media_type: str | None = None


@dataclass
class Exporter:
    """What the run learned of a builder, once: it has no OCI exporter (buildx said so)."""

    missing: bool = False


def exporter_of(tools: Tools, builder: str | None) -> Exporter:
    """The run's one note on `builder` (None: the engine's own), shared by its images."""
    return tools.once(("oci exporter", builder or ""), Exporter)


@dataclass(frozen=True)
class BuildResult:
    repository: str
    digest: str
    tags: tuple[str, ...]  # the tags to publish once verified (or published, for `build`)
    media_type: str | None = None
    staging_tag: str | None = None  # the per-run tag the image was pushed under, if any
    tags_pushed: bool = False  # buildx pushed `tags` itself (`build` where no layout pushes)
    platforms: tuple[str, ...] = ()  # the platforms asked of buildx (none: the engine's own)
    # The root manifest (media type, bytes) as our push sent it; None where buildx pushed.
    pushed: tuple[str, bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def image(self) -> ImageRef:
        return ImageRef(self.repository, self.digest)

    def as_dict(self) -> dict[str, object]:
        """What the report says of the build: all but the pushed manifest's bytes."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pushed"}


def request(
    run: Run,
    target: Target,
    inputs: BuildInputs,
    facts: SourceFacts,
    folder: Path,
    tags: tuple[str, ...] = (),
) -> BuildRequest:
    """The buildx call: into `folder`/layout, or (`tags`) pushed to those tags. The image's
    times are the commit's (SOURCE_DATE_EPOCH), never the build's."""
    s = run.settings
    labels, build_args = dict(inputs.labels), dict(inputs.build_args)
    if facts.epoch is not None and facts.created is not None:
        labels[CREATED] = facts.created
        if not build_args.get(EPOCH_ARG):  # `--build-arg SOURCE_DATE_EPOCH` of an unset one
            build_args[EPOCH_ARG] = str(facts.epoch)
    return BuildRequest(
        context=inputs.context,
        dockerfile=inputs.dockerfile,
        tags=[f"{target.repository}:{tag}" for tag in tags],
        build_args=build_args,
        labels=labels,
        annotations=inputs.oci_annotations,
        platforms=inputs.platforms,
        target=s.target,
        builder=s.builder,
        pull=s.pull,
        cache_from=s.cache_from,
        cache_to=s.cache_to,
        secrets=s.secrets,
        metadata_file=folder / "metadata.json",
        # buildx's provenance holds the build's own time and host: no two builds would match.
        provenance="off" if inputs.reproducible else s.provenance,
        layout=None if tags else folder / "layout",
        rewrite_timestamp=inputs.reproducible,
    )


def build_local(
    run: Run, tools: Tools, log: RunLog, target: Target, inputs: BuildInputs
) -> LocalBuild:
    """Build into an OCI layout in the run's private folder; nothing leaves the machine."""
    folder = tools.private_folder() / "build"
    folder.mkdir(exist_ok=True)
    with log.step("build", f"Build {target.repository}") as record:
        # An image of a set whose bake built it: the facts and the result the bake has.
        facts = tools.baked_facts() or source_facts(
            run,
            inputs,
            lambda root: tools.once(("git status", str(root)), lambda: work_tree_status(root)),
        )  # once for every image
        _say(run, log, facts)
        build_request = request(run, target, inputs, facts, folder)
        baked = tools.baked(build_request)
        if baked is not None:
            digest, media_type = read_metadata(baked)
            record.detail = {"digest": digest, "baked": True}
            return LocalBuild(build_request.layout, digest, facts, media_type)
        exporter = exporter_of(tools, build_request.builder)
        if not exporter.missing:
            try:
                argv = buildx(tools, log, build_request, f"build {target.repository}")
            except CommandFailed as exc:
                if NO_OCI_EXPORTER not in exc.stderr:
                    raise
                exporter.missing = True  # the run's other images go straight to a load
        if exporter.missing:
            if inputs.reproducible:
                raise InputError(
                    "provenance.reproducible needs an OCI export, which this builder can't "
                    "make (the docker driver with the classic image store)",
                    hint="use an engine with the containerd image store, or a "
                    "docker-container builder (--builder), or drop provenance.reproducible",
                ) from None
            local = _loaded(run, tools, log, build_request, facts)
            record.detail = {"digest": local.digest, "saved": True}
            return local
        if run.settings.dry_run:
            log.info("dry-run", command=render(argv, run.redactor, tools.docker.shown_environ()))
            return LocalBuild(build_request.layout, DRY_RUN_DIGEST, facts)
        digest, media_type = read_metadata(folder / "metadata.json")
        record.detail = {"digest": digest}
    return LocalBuild(build_request.layout, digest, facts, media_type)


def _loaded(
    run: Run, tools: Tools, log: RunLog, build_request: BuildRequest, facts: SourceFacts
) -> LocalBuild:
    """No OCI exporter (the classic engine): build into the engine's image store, save the
    image by its ID and make the OCI layout here (adapters/docker_archive.py), so that our
    registry client pushes it blob by blob, as it pushes an export, rather than buildx in one
    go to a staging tag."""
    from provenance_tasks.adapters.docker_archive import layout_from_archive, manifest_annotations

    assert build_request.layout is not None and build_request.metadata_file is not None
    log.info("this builder has no OCI exporter: the image is loaded into the engine and saved")
    buildx(tools, log, replace(build_request, layout=None, load=True), "build and load")
    metadata = metadata_of(build_request.metadata_file)
    # The docker driver names the loaded image by its ID (its config's digest).
    image_id = metadata.get("containerimage.config.digest") or metadata.get("containerimage.digest")
    if not isinstance(image_id, str) or not image_id.startswith("sha256:"):
        raise ToolError(
            f"buildx wrote no sha256 image ID to {build_request.metadata_file.name} for the "
            f"image it loaded ({image_id!r})",
            hint="use a buildx that supports --metadata-file (0.13 or newer)",
        )
    annotations = manifest_annotations(build_request.annotations)
    archive = build_request.metadata_file.with_name("image.tar")
    tools.docker.save(validate_digest(image_id, "buildx metadata"), archive)
    try:
        converted = layout_from_archive(
            archive,
            build_request.layout,
            image_id=image_id,
            annotations=annotations,
            cancel=tools.docker.cancel,
        )
    finally:
        archive.unlink(missing_ok=True)
    with suppress(ValueError, AttributeError):
        _say_created(log, facts, json.loads(converted.config).get("created"))
    return LocalBuild(build_request.layout, converted.digest, facts, converted.media_type)


def _say(run: Run, log: RunLog, facts: SourceFacts) -> None:
    """What the image will claim that isn't quite so, said before it is built."""
    if facts.changed is None and "org.opencontainers.image.revision" in run.ci.labels:
        log.warning(
            "git can't say whether the build's files match the commit the image "
            "names: the report says clean: null"
        )
    if facts.changed:
        shown = ", ".join(facts.changed[:5]) + (" …" if len(facts.changed) > 5 else "")
        log.warning(
            f"{len(facts.changed)} tracked file(s) differ from the commit: {shown}. The image "
            "names a revision it wasn't built from exactly (recorded in the report; "
            "provenance.require_clean makes this an error)"
        )
    if facts.epoch is None:
        log.warning(
            f"no {EPOCH_ARG} and no commit to take the time from: the image's created is the "
            "build's time, and its label is left out"
        )


def push(
    run: Run,
    tools: Tools,
    log: RunLog,
    target: Target,
    inputs: BuildInputs,
    local: LocalBuild,
    *,
    staged: bool,
) -> BuildResult:
    """Put the image at the registry under its digest. With no layout to push, buildx pushes
    to a staging tag (`staged`: build-sign-verify, which publishes later) or to the tags."""
    from provenance_tasks.adapters.registry import Unserved

    repository = target.repository
    with log.step("push", f"Push {repository} by digest") as record:
        if local.layout is not None and local.digest is not None:
            if run.settings.dry_run:
                log.info("dry-run: push the OCI layout by digest, no tag", image=repository)
                return BuildResult(repository, local.digest, target.tags, local.media_type)
            layout = local.layout
            pushed = with_retries(
                log,
                tools.retry_policy,
                "push",
                f"push to {repository}",
                registry_of(repository),
                lambda left: tools.registry.push_layout(
                    layout, repository, timeout=min(left, 300.0)
                ),
            )
            if isinstance(pushed, Unserved):  # no tool pushes a layout by digest: buildx does
                if inputs.reproducible:  # buildx would push a new build, its times not rewritten
                    raise InputError(
                        f"provenance.reproducible: the login for {pushed} is a credential "
                        "helper's, and only a push of the OCI export keeps its digest",
                        hint="log in with docker login into the run's docker config (the "
                        "default), or drop provenance.reproducible",
                    )
                log.info(f"the login for {pushed} is a credential helper's: buildx pushes")
            else:
                if pushed.digest != local.digest:
                    raise ToolError(
                        f"pushed {pushed.digest}, but buildx built {local.digest}",
                        hint="the OCI layout changed under the run: nothing was signed",
                    )
                record.detail = {"digest": pushed.digest, "manifests": len(pushed.manifests)}
                return BuildResult(
                    repository,
                    pushed.digest,
                    target.tags,
                    local.media_type,
                    pushed=(pushed.media_type, pushed.data),
                )
        result = _push_withbuildx(run, tools, log, target, inputs, local.facts, staged=staged)
        record.detail = {"digest": result.digest, "staging_tag": result.staging_tag}
    return result


def _push_withbuildx(
    run: Run,
    tools: Tools,
    log: RunLog,
    target: Target,
    inputs: BuildInputs,
    facts: SourceFacts,
    *,
    staged: bool,
) -> BuildResult:
    staging = f"provenance-staging-{secrets.token_hex(6)}" if staged else None
    if staging:
        log.warning(
            f"this builder can't push without a tag: pushing to the staging tag {staging}, "
            "which is removed after publishing where the registry allows it"
        )
    folder = tools.private_folder() / "build"
    folder.mkdir(exist_ok=True)
    tags = (staging,) if staging else target.tags
    build_request = request(run, target, inputs, facts, folder, tags)
    argv = buildx(tools, log, build_request, f"push to {target.repository}")
    if run.settings.dry_run:
        log.info("dry-run", command=render(argv, run.redactor, tools.docker.shown_environ()))
        return BuildResult(target.repository, DRY_RUN_DIGEST, target.tags, staging_tag=staging)
    digest, media_type = read_metadata(folder / "metadata.json")
    _check_created(tools, log, target.repository, folder / "metadata.json", facts)
    return BuildResult(target.repository, digest, target.tags, media_type, staging, not staging)


def _check_created(
    tools: Tools, log: RunLog, repository: str, metadata: Path, facts: SourceFacts
) -> None:
    """An older BuildKit (docker 20.10's) ignores SOURCE_DATE_EPOCH: the config it pushed then
    says the build's time. Read back and said, since the label says the commit's."""
    from provenance_tasks.adapters.registry import Unserved

    try:
        config = json.loads(metadata.read_text()).get("containerimage.config.digest")
        if not config or facts.created is None:
            return
        blob = tools.registry.blob(f"{repository}@{config}")
        if isinstance(blob, Unserved):
            return  # a credential helper's login: no tool reads a blob, so it can't be told
        found = json.loads(blob).get("created")
    except (ProvenanceError, OSError, ValueError, AttributeError):
        return  # not readable here: the label still says the commit's time
    _say_created(log, facts, found)


def _say_created(log: RunLog, facts: SourceFacts, found: object) -> None:
    if facts.created is None:
        return
    if found and not str(found).startswith(facts.created.removesuffix("Z")):
        facts.config_created = str(found)
        log.warning(
            f"this builder ignores {EPOCH_ARG}: the image config's created is the build's time "
            f"({found}); its label says the commit's ({facts.created})"
        )
