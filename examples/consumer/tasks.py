"""A two-service repository's own tasks, composed from provenance-tasks' Python API.

    invoke release [--tag v1] [--fail-check]        one image (provenance.context)
    invoke release-set [--tag v1] [--fail-check]    both services, as a set
    invoke --dry release                            every command of every step, nothing run
    invoke staged                                   provenance-tasks' build task, from Python

Each is one run: one "CI:" line, one summary, one report (provenance-report.json) holding every
step, this repository's own check among them, and one dotenv. The tags move only after the
image verified, so a failing check leaves every tag where it was. provenance-tasks' own tasks
are here too (`invoke provenance.verify`, ...), for jobs that hand over through files.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from invoke.collection import Collection
from invoke.context import Context
from invoke.exceptions import Exit
from invoke.tasks import task

from provenance_tasks import Built, Provenance, ProvenanceError
from provenance_tasks.tasks import build as provenance_build
from provenance_tasks.tasks import ns as provenance

SERVICES = [
    {"name": "api", "context": "services/api"},
    {"name": "worker", "context": "services/worker"},
]


class CheckFailed(Exception):
    """This repository's own check refused an image."""


def check(image: Built, *, fail: bool) -> dict[str, Any]:
    """A stand-in for the repository's scanner: it sees the image by digest, never by tag,
    and refuses it when asked to (--fail-check)."""
    if not image.ref.startswith(f"{image.repository}@sha256:"):
        raise CheckFailed(f"{image.ref} is not a reference by digest")
    if fail:
        raise CheckFailed(f"{image.ref}: refused, as --fail-check asked")
    return {"checked": image.ref}


@task
def release(c: Context, tag: str = "", fail_check: bool = False) -> None:
    """Build (staged), check, sign, attest, verify both, then publish one image."""
    tags = [tag] if tag else []
    try:
        with Provenance.open(c, tags=tags) as run:
            image = run.build(stage=True)
            assert isinstance(image, Built)  # one image: a set would give a mapping
            with run.step("check", "the repository's own check") as record:
                record.detail.update(check(image, fail=fail_check))
            signed = run.sign(image)
            attested = run.attest(image)
            verification = run.verify(image)
            run.verify_attestation(image)  # the provenance, before any tag moves
            published = run.publish(image)
    except (ProvenanceError, CheckFailed) as exc:
        raise Exit(f"release: {exc}", code=getattr(exc, "exit_code", 1)) from None
    _say(
        {
            "built": {"ref": image.ref, "tags": image.tags, "platforms": image.platforms},
            "signed": {"tags": signed.tags, "format": signed.bundle_format},
            "attested": attested.subjects,
            "verified": verification.ok,
            "published": published.tags,
        }
    )


@task
def release_set(c: Context, tag: str = "", fail_check: bool = False) -> None:
    """The same for both services, as a set: every result is a mapping by image name."""
    tags = [tag] if tag else []
    try:
        with Provenance.open(c, tags=tags, images=SERVICES) as run:
            images = run.build(stage=True)
            assert isinstance(images, Mapping)
            with run.step("check", "the repository's own check") as record:
                for name, image in images.items():
                    record.detail[name] = check(image, fail=fail_check)
            signed = run.sign(images)
            run.attest(images)
            verified = run.verify(images)
            run.verify_attestation(images)
            published = run.publish(images)
    except (ProvenanceError, CheckFailed) as exc:
        raise Exit(f"release-set: {exc}", code=getattr(exc, "exit_code", 1)) from None
    _say(
        {
            name: {
                "ref": image.ref,
                "signed": signed[name].tags,
                "verified": verified[name].ok,
                "published": published[name].tags,
            }
            for name, image in images.items()
        }
    )


@task
def staged(c: Context) -> None:
    """provenance-tasks' own build task, called from Python: it returns the same Built."""
    image = provenance_build(c, stage=True)
    assert isinstance(image, Built), type(image)
    _say({"ref": image.ref, "tags": image.tags, "run_id": image.run_id})


def _say(results: Mapping[str, Any]) -> None:
    print(json.dumps(results, sort_keys=True))


ns = Collection(release, release_set, staged)
ns.add_collection(provenance)
