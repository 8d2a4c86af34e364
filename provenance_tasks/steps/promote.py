"""Promote a verified image to another repository, or registry, with its signatures.

    provenance-tasks promote --from staging/app@sha256:... --to prod/app --tag 1.2.0

In order, each step only once the one before passed:
1. verify the source: signer (--identity/--issuer or --public-key, else the run's own), its
   annotations (what identifies the build, as `verify --digest` expects, and --annotation; all
   of them, the signing job's too, where --from is left out and the build's report is here),
   every platform, and the SLSA provenance (unless --no-attest). A source that fails is exit 3, and
   nothing is copied or tagged.
2. copy it by digest (copy_plan): the index, each manifest and their blobs, then cosign's
   `.sig`/`.att` tags, its bundles (referrers) and the referrers fallback index of each.
3. sign it at the destination, with this run's signer: a copied classic signature names the
   source repository in `critical.identity.docker-reference`, which containers/image's
   `matchRepository` refuses. The signature carries the source's annotations, the new tag, and
   `dev.provenance.promoted.from` (REPO@DIGEST), in the run's bundle format, as `sign` does.
4. verify at the destination as consumers will: this run's signer and those annotations, every
   platform, and the copied provenance (the source's signer).
5. only then publish the tags there, and read each back.

Retries and faults are a push's: each copy is retried whole, and skips what has landed. In a
set (images:), each image's IMAGE_REF is promoted to --to/<name>, side by side as the set runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from provenance_tasks.annotations import decode_value
from provenance_tasks.errors import InputError
from provenance_tasks.models import Annotation, ImageRef, Target, VerificationPolicy
from provenance_tasks.references import registry_of, split_image_ref, validate_repository
from provenance_tasks.retry import with_retries
from provenance_tasks.settings import bundle_formats
from provenance_tasks.steps import build as build_step
from provenance_tasks.steps import login as login_step
from provenance_tasks.steps import outputs, plan
from provenance_tasks.steps import sign as sign_step
from provenance_tasks.steps import verify as verify_step
from provenance_tasks.steps.pipeline import kept, publish_tags
from provenance_tasks.steps.platforms import platforms_of
from provenance_tasks.steps.preflight import preflight
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify_checks import VerifyReport

PROMOTED_FROM = "dev.provenance.promoted.from"
STEPS = ("verify", "copy", "sign", "verify", "publish", "audit")


@dataclass(frozen=True)
class CopyItem:
    """One thing to copy: a manifest by digest, or what a tag names (the same tag there)."""

    reference: str  # a digest, or a tag
    subject: str  # the digest it belongs to
    kind: str  # image, signatures, attestations, referrers, referrer

    @property
    def is_tag(self) -> bool:
        return not self.reference.startswith("sha256:")


def copy_plan(digest: str, children: tuple[str, ...] = ()) -> tuple[CopyItem, ...]:
    """What a copy of `digest` carries: the image (its children come with it), then for the
    image and each child, cosign's tags: `.sig`, `.att`, and the referrers fallback index,
    which lists the bundles. The bundles found by the API are added as they are listed."""
    items = [CopyItem(digest, digest, "image")]
    for subject in (digest, *children):
        tag = subject.replace(":", "-", 1)
        items += [
            CopyItem(f"{tag}.sig", subject, "signatures"),
            CopyItem(f"{tag}.att", subject, "attestations"),
            CopyItem(tag, subject, "referrers"),
        ]
    return tuple(items)


@dataclass
class PromoteReport:
    """Both places and both signers, and what the copy did (the report's `promote`)."""

    source: str  # REPO@DIGEST
    destination: str  # REPO@DIGEST
    tags: tuple[str, ...]
    source_signer: str
    destination_signer: str
    copied: list[dict[str, Any]] = field(default_factory=list)
    published: list[str] = field(default_factory=list)
    verified: VerifyReport | None = field(default=None, repr=False)  # at the destination

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": {"reference": self.source, "signer": self.source_signer},
            "destination": {"reference": self.destination, "signer": self.destination_signer},
            "tags": list(self.tags),
            "published": self.published,
            "copied": self.copied,
        }


def endpoints(run: Run, earlier: str | None = None) -> tuple[ImageRef, str]:
    """--from REPO@DIGEST (else `earlier`, the IMAGE_REF of the build's outputs here) and --to
    REPO, checked: bad input (exit 2) before anything runs."""
    s = run.settings
    if run.image_name and s.promote_from:
        raise InputError(
            "--from names one image, and this run promotes a set (images:)",
            hint="leave --from out: each image's IMAGE_REF (its build's outputs) is promoted",
        )
    given = s.promote_from or earlier
    if not given:
        raise InputError(
            "promote needs the image to promote",
            hint="pass --from REPO@DIGEST, or run where the build's outputs are (its dotenv "
            "or report)",
        )
    if not s.promote_to:
        raise InputError("promote needs where to", hint="pass --to REPOSITORY")
    repository, digest = split_image_ref(given, "--from" if s.promote_from else "IMAGE_REF")
    # An image of a set lands under --to, by its name, as under provenance.image.
    to = f"{s.promote_to}/{run.image_name}" if run.image_name else s.promote_to
    destination = validate_repository(to, "--to")
    if destination == repository:
        raise InputError(
            f"--to {destination} is the repository of --from",
            hint="promote copies to another repository; to tag it here, run publish",
        )
    return ImageRef(repository, digest), destination


def _source_mode(run: Run) -> str:
    """Who signed the source: an identity given means keyless (certificate with a chain)."""
    s = run.settings
    if s.identity or s.issuer:
        return "certificate" if s.certificate_chain else "keyless"
    if s.public_key:
        return "key"
    return plan.signing_mode(run)


def run_promote(run: Run, tools: Tools, log: RunLog) -> PromoteReport:
    s = run.settings
    # Without --from, the build's outputs here name the source, and its run's report what its
    # signature must say (the signing job's own id and URL too), as a later `verify` reads them.
    earlier = None if s.promote_from else tools.outputs.earlier(run)
    source, destination = endpoints(run, earlier.ref if earlier else None)
    log.plan(STEPS)
    # The source, as `verify` sees it: no tag to expect, the signer the flags name.
    digest = None if earlier else source.digest
    src_run = replace(run, settings=replace(s, image=source.repository, digest=digest, tags=()))
    src_plan = plan.resolve(src_run, tools, ("verify",))
    src_policy = plan.verification_policy(src_run, tools, _source_mode(run))
    # The destination: this run's signer and its own policy (the flags describe the source).
    own = replace(s, image=destination, digest=source.digest, public_key=None)
    dst_run = replace(run, settings=replace(own, identity=None, issuer=None))
    dst_target = plan.target(dst_run)
    mode = plan.signing_mode(dst_run)
    signing = plan.signing_material(dst_run, mode)
    dst_policy = plan.verification_policy(dst_run, tools, mode, signing)
    dst_image = ImageRef(destination, source.digest)
    checked = plan.Plan(("sign", "verify"), dst_target, None, mode, signing, dst_policy, dst_image)
    checked = preflight(dst_run, tools, log, checked)
    assert checked.policy is not None and checked.signing is not None
    dst_policy = checked.policy
    log.bind_image(source.repository, source.digest)
    login_step.login(run, tools, log)
    report = PromoteReport(
        str(source),
        str(dst_image),
        dst_target.tags,
        src_policy.describe(),
        dst_policy.describe(),
    )
    log.keep("promote", report)

    found = kept(
        log,
        "source_verify",
        verify_step.verify,
        src_run,
        tools,
        log,
        src_plan.target,
        source,
        src_policy,
    )
    if s.attest:
        _attestations(src_run, tools, log, "source_attestations", source, src_policy)

    report.copied = copy_image(run, tools, log, source, destination)
    log.bind_image(destination, source.digest)
    target = destination_target(run, found, dst_target, source)
    kept(log, "sign", sign_step.sign, dst_run, tools, log, target, dst_image, mode, checked.signing)
    report.verified = kept(
        log,
        "verify",
        verify_step.verify,
        dst_run,
        tools,
        log,
        target,
        dst_image,
        dst_policy,
        formats=bundle_formats(s),
    )
    if s.attest:  # the copied provenance: the source's signer made it
        _attestations(
            replace(dst_run, settings=src_run.settings),
            tools,
            log,
            "attestations",
            dst_image,
            src_policy,
        )
    built = build_step.BuildResult(destination, source.digest, target.tags)
    publish_tags(dst_run, tools, log, built, report.published, verified=True)
    values = outputs.image_outputs(
        dst_run, destination, source.digest, target.tags, tuple(report.published)
    )
    tools.outputs.write(dst_run, log, values)
    return report


def _attestations(
    run: Run, tools: Tools, log: RunLog, name: str, image: ImageRef, policy: VerificationPolicy
) -> None:
    from provenance_tasks.steps import attest_verify

    kept(log, name, attest_verify.verify_attestations, run, tools, log, image, policy)


def destination_target(run: Run, found: VerifyReport, planned: Target, source: ImageRef) -> Target:
    """What the destination's signatures say: the annotations of the source's signature that
    verified (less its `tag`), the new tags, and where the image came from."""
    annotations: tuple[Annotation, ...] = planned.ci_annotations
    index = found.matches.get("*")
    if index is not None:
        signed = found.signatures[index].annotations
        where = f"the signature of {source}"
        annotations = tuple(
            Annotation(key, decode_value(value), where)
            for key, value in signed.items()
            if key not in ("tag", PROMOTED_FROM)
        )
    elif not run.settings.dry_run:
        raise InputError(f"no verified signature of {source} to carry its annotations")
    promoted = Annotation(PROMOTED_FROM, str(source), "promote")
    return Target(planned.repository, planned.tags, annotations, (promoted,))


def copy_image(
    run: Run, tools: Tools, log: RunLog, source: ImageRef, destination: str
) -> list[dict[str, Any]]:
    """The image and its signatures copied (copy_plan), each item retried as a push is."""
    from provenance_tasks.adapters.registry import Copied, Unserved

    done: list[dict[str, Any]] = []
    with log.step("copy", f"Copy {source} to {destination}") as record:
        if run.settings.dry_run:
            log.info(f"dry-run: copy {source} and its signatures to {destination}")
            return done
        index = platforms_of(run, tools, log, "copy", source, None)
        children = tuple(c.digest for c in (*index.platforms, *index.attestations))
        items = list(copy_plan(source.digest, children))
        listings: dict[str, tuple[Any, ...]] = {}
        for subject in (source.digest, *children):
            listed = _retried(
                run,
                tools,
                log,
                f"list the referrers of {source.repository}@{subject}",
                lambda left, subject=subject: tools.registry.referrers_of(
                    source.repository, subject, timeout=min(left, 30.0)
                ),
            )
            listings[subject] = () if isinstance(listed, Unserved) else tuple(listed)
            items += [CopyItem(r.digest, subject, "referrer") for r in listings[subject]]
        for item in items:
            copied = _retried(
                run,
                tools,
                log,
                f"copy {source.repository}{'@:'[item.is_tag]}{item.reference} to {destination}",
                lambda left, item=item: _copy_one(
                    tools, source.repository, item, destination, left
                ),
            )
            if isinstance(copied, Unserved):
                raise InputError(
                    f"promote copies over the registry's HTTP API, which can't be used here "
                    f"({copied.why})",
                    hint="log in with --registry/--username (the run's docker config), not a "
                    "credential helper",
                )
            if isinstance(copied, Copied):
                done.append({"reference": item.reference, "kind": item.kind, **copied.as_dict()})
        _list_referrers(run, tools, log, destination, source.digest, listings)
        sent = sum(1 for row in done if row["manifests"])
        log.info(f"copied {len(done)} item(s) to {destination}; {sent} had something to put")
        record.detail = {"items": len(done)}
    return done


def _list_referrers(
    run: Run,
    tools: Tools,
    log: RunLog,
    destination: str,
    digest: str,
    listings: dict[str, tuple[Any, ...]],
) -> None:
    """A destination without the referrers API finds bundles by the fallback tag only: each
    subject's index there lists what the source listed (its API's answer included), typed."""
    if not any(listings.values()):
        return
    api = _retried(
        run,
        tools,
        log,
        f"ask {destination} for the referrers API",
        lambda left: tools.registry.has_referrers_api(destination, digest, timeout=min(left, 30)),
    )
    if api is not False:  # the API lists them there (or, Unserved, nothing can be said)
        return
    for subject, listed in listings.items():
        if listed:
            _retried(
                run,
                tools,
                log,
                f"list the referrers of {destination}@{subject} in its fallback index",
                lambda left, subject=subject, listed=listed: tools.registry.repair_fallback_index(
                    destination, subject, listed=listed, timeout=min(left, 30.0)
                ),
            )


def _copy_one(tools: Tools, repository: str, item: CopyItem, destination: str, left: float) -> Any:
    """One item: by digest, or the tag's tree and the same tag there. A tag the destination
    has already stays as it is (an earlier promote's signatures are not overwritten)."""
    tag = item.reference if item.is_tag else None
    if tag is not None and _tag_at(tools, f"{destination}:{tag}", left) is not None:
        return None
    return tools.registry.copy(
        repository,
        item.reference,
        destination,
        tag=tag,
        spool=tools.private_folder(),
        timeout=min(left, 60.0),
    )


def _tag_at(tools: Tools, reference: str, left: float) -> str | None:
    """The digest `reference` names at the registry, or None when there is no such tag."""
    from provenance_tasks.errors import CommandFailed

    try:
        return tools.registry.resolve(reference, timeout=min(left, 30.0))
    except CommandFailed as exc:
        if exc.cause.kind == "not-yet-there":
            return None
        raise


def _retried(run: Run, tools: Tools, log: RunLog, what: str, call: Any) -> Any:
    return with_retries(
        log, tools.retry_policy, "copy", what, registry_of(run.settings.promote_to or ""), call
    )
