"""The steps' own records made into the public results (results.py), and results handed back in.

Kept apart from api.py so the API reads as the list of what a run can do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from provenance_tasks.errors import InputError
from provenance_tasks.results import (
    Attested,
    Built,
    Promoted,
    Published,
    Signed,
    Verification,
)

if TYPE_CHECKING:
    from provenance_tasks.steps.attest import AttestReport
    from provenance_tasks.steps.build import BuildResult
    from provenance_tasks.steps.outputs import Earlier
    from provenance_tasks.steps.promote import PromoteReport
    from provenance_tasks.steps.run import Run
    from provenance_tasks.steps.runlog import RunLog
    from provenance_tasks.steps.sets.outputs import ImageOutcome
    from provenance_tasks.steps.sign import SignResult
    from provenance_tasks.steps.verify_checks import VerifyReport

T = TypeVar("T")


def built(
    run: Run,
    raw: BuildResult | None,
    outputs: Mapping[str, str] | None,
    *,
    reference: object = None,
    name: str | None = None,
) -> Built:
    """The image a call worked on: the build's result, else (an image the call was given, by
    digest or by an earlier job's outputs) the reference its record names."""
    values = MappingProxyType(dict(outputs or {}))
    if raw is not None:
        published = tuple(t for t in values.get("IMAGE_PUBLISHED", "").split(",") if t)
        return Built(
            raw.repository,
            raw.digest,
            raw.tags,
            raw.platforms,
            published,
            name,
            values.get("PROVENANCE_RUN_ID", run.id),
            raw.staging_tag,
            values,
        )
    ref = getattr(reference, "reference", None) or values.get("IMAGE_REF", "")
    repository, _, digest = str(ref).partition("@")
    tags = tuple(t for t in values.get("IMAGE_TAGS", "").split(",") if t)
    run_id = values.get("PROVENANCE_RUN_ID", run.id)
    return Built(repository, digest, tags, name=name, run_id=run_id, outputs=values)


def built_set(outcomes: list[ImageOutcome]) -> dict[str, Built]:
    return {
        o.entry.name: built(o.run, o.log.results.get("build"), o.log.outputs, name=o.entry.name)
        for o in outcomes
    }


def of_set(outcomes: list[ImageOutcome], make: Callable[[Built, Any], T]) -> dict[str, T]:
    """Each image's result of a set's call, by name."""
    found = {}
    for o in outcomes:
        image = built(
            o.run, o.log.results.get("build"), o.log.outputs, reference=o.result, name=o.entry.name
        )
        found[o.entry.name] = make(image, o.result)
    return found


def signed(image: Built, raw: SignResult) -> Signed:
    return Signed(
        image,
        raw.mode,
        raw.bundle_format,
        raw.tlog,
        tuple(s.tag for s in raw.signatures),
        tuple(p["digest"] for p in raw.platforms),
        raw,
    )


def attested(image: Built, raw: AttestReport) -> Attested:
    subjects = tuple(str(row.get("digest", "")) for row in raw.rows)
    return Attested(image, raw.predicate_type, raw.builder_id, subjects, tuple(raw.problems), raw)


def verification(image: Built, raw: VerifyReport, dry_run: bool) -> Verification:
    return Verification(
        image,
        raw.policy,
        tuple({"tag": e.tag, "annotations": dict(e.annotations)} for e in raw.expectations),
        tuple(dict(vars(s)) for s in raw.signatures),
        tuple(raw.problems),
        MappingProxyType(dict(raw.tags)),
        MappingProxyType(dict(raw.readers)),
        dry_run,
        raw,
    )


def published(image: Built, raw: VerifyReport, dry_run: bool) -> Published:
    return Published(image, tuple(raw.tags), verification(image, raw, dry_run))


def promoted(run: Run, raw: PromoteReport, dry_run: bool) -> Promoted:
    """The promote's report made into its result: both images by digest, both signers."""
    source_repository, _, digest = raw.source.partition("@")
    repository = raw.destination.partition("@")[0]
    source = Built(source_repository, digest, run_id=run.id)
    image = Built(repository, digest, raw.tags, published=tuple(raw.published), run_id=run.id)
    if raw.verified is None:  # no verify ran
        check = Verification(image, raw.destination_signer, (), (), dry_run=dry_run)
    else:
        check = verification(image, raw.verified, dry_run)
    return Promoted(
        source, image, raw.tags, raw.source_signer, raw.destination_signer, check, dry_run, raw
    )


def handed(image: object, run_id: str) -> dict[str, Earlier]:
    """The images a caller handed to a call, as the step reads an earlier job's outputs: by
    image name ("" for one image). Only this run's own results: another run's digest is
    passed as a string (`repo@sha256:...`) and checked as any digest given is."""
    from provenance_tasks.steps.outputs import Earlier

    if image is None or isinstance(image, str):
        return {}
    if isinstance(image, Built):
        found = {image.name or "": image}
    elif isinstance(image, Mapping) and all(isinstance(v, Built) for v in image.values()):
        found = {str(name): value for name, value in image.items()}
    else:
        raise InputError(
            f"can't work on {type(image).__name__}",
            hint="pass what build returned, a mapping of those by name, or 'repo@sha256:...'",
        )
    for name, value in found.items():
        if value.run_id != run_id:
            raise InputError(
                f"{value.ref} was built by another run ({value.run_id or 'unknown'})",
                hint="pass it as a string, repo@sha256:..., to have it checked as a given digest",
            )
        if name and value.name and name != value.name:
            raise InputError(f"image {name} was handed {value.name}'s result")
    return {
        name: Earlier(
            value.ref,
            value.outputs.get("PROVENANCE_COMMIT") or None,
            value.outputs.get("PROVENANCE_SOURCE") or None,
            "this run's build",
            value.outputs,
        )
        for name, value in found.items()
    }


def failure(log: RunLog, error: BaseException) -> dict[str, Any]:
    ended = log.failure_of(error)
    return {
        "step": ended.step,
        "message": ended.message,
        "hint": ended.hint,
        "exit_code": ended.exit_code,
    }
