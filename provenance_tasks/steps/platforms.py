"""The platform manifests of an image, read once from the registry by the index's digest: what
sign signs and verify verifies, each by its own digest, beside the index.

A single manifest (one platform, the classic engine) has none: nothing is read for it when its
media type is known. BuildKit's attestation manifests are recognised and said, never signed as
platforms.
"""

from __future__ import annotations

from dataclasses import replace

from provenance_tasks.image_index import Child, IndexContents, contents, is_index
from provenance_tasks.models import ImageRef
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog


def platforms_of(
    run: Run, tools: Tools, log: RunLog, step: str, image: ImageRef, media_type: str | None
) -> IndexContents:
    """The index's platforms and attestations; none for a single manifest or a dry run."""
    if run.settings.dry_run or (media_type is not None and not is_index(media_type)):
        return IndexContents()
    reference = str(image)
    if reference in tools.indexes:
        return tools.indexes[reference]
    found_type, data = with_retries(
        log,
        tools.retry_policy,
        step,
        f"read {reference}",
        registry_of(reference),
        lambda _: tools.registry.manifest(reference),
    )
    found = contents(data, reference) if is_index(found_type) else IndexContents()
    tools.indexes[reference] = found
    if found.attestations:
        what = (
            "signed too, as provenance.sign_attestation_manifests asks"
            if run.settings.sign_attestation_manifests
            else "not signed"
        )
        log.info(
            f"{len(found.attestations)} attestation manifest(s) of BuildKit in the index: "
            f"recognised, not platforms, {what}"
        )
    return found


def signed_children(
    run: Run, tools: Tools, log: RunLog, step: str, image: ImageRef, media_type: str | None
) -> tuple[Child, ...]:
    """What gets a signature of its own beside the index: each platform manifest, and
    BuildKit's attestation manifests when asked (a BuildKit build policy reads those)."""
    found = platforms_of(run, tools, log, step, image, media_type)
    if not run.settings.sign_attestation_manifests:
        return found.platforms
    named = tuple(
        replace(a, platform=f"attestation of {a.describes or 'the index'}")
        for a in found.attestations
    )
    return (*found.platforms, *named)
