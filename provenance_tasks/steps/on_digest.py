"""The tasks that work on a digest an earlier run built: sign, attest, verify, verify-attestation
and publish. Each resolves its plan, probes once, logs in, runs its step and keeps what it
returned for the report; publish verifies again, here, before any tag moves. The build
pipelines, and what these share with them, are pipeline.py's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenance_tasks.errors import InputError
from provenance_tasks.steps import build as build_step
from provenance_tasks.steps import build_inputs, outputs
from provenance_tasks.steps import login as login_step
from provenance_tasks.steps import sign as sign_step
from provenance_tasks.steps import verify as verify_step
from provenance_tasks.steps.lookup import read_digest
from provenance_tasks.steps.pipeline import kept, prepared, publish_tags, steps_of
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify_checks import VerifyReport

if TYPE_CHECKING:  # imported where attestations are made or read: most runs make none
    from provenance_tasks.steps import attest as attest_step


def run_publish(run: Run, tools: Tools, log: RunLog) -> VerifyReport:
    """The last step of a task-by-task flow (build --stage, sign, verify, publish): verify the
    digest again, here, then move the tags onto it. Never a tag on what this run didn't verify."""
    p = prepared(run, tools, log, steps_of("publish", run))
    assert p.image is not None and p.policy is not None
    login_step.login(run, tools, log)
    staged = build_step.BuildResult(
        p.image.repository, p.image.digest, p.target.tags, staging_tag=p.staging_tag
    )
    log.bind_image(staged.repository, staged.digest)
    published: list[str] = []
    report = kept(log, "verify", verify_step.verify, run, tools, log, p.target, p.image, p.policy)
    publish_tags(run, tools, log, staged, published, verified=True)
    report.tags = dict.fromkeys(published, staged.digest)
    # Only once published: a publish that failed leaves the build's dotenv as it was.
    values = outputs.image_outputs(
        run, staged.repository, staged.digest, staged.tags, tuple(published), run_id=p.continues
    )
    tools.outputs.write(run, log, values)
    return report


def run_sign(run: Run, tools: Tools, log: RunLog) -> sign_step.SignResult:
    p = prepared(run, tools, log, steps_of("sign", run))
    assert p.image is not None and p.mode is not None and p.signing is not None
    login_step.login(run, tools, log)
    sign_step.ensure_at_registry(run, tools, log, p.image)
    signed = kept(
        log,
        "sign",
        sign_step.sign,
        run,
        tools,
        log,
        p.target,
        p.image,
        p.mode,
        p.signing,
        second=p.second,
    )
    values = outputs.image_outputs(
        run,
        p.image.repository,
        p.image.digest,
        p.target.tags,
        staging_tag=p.staging_tag,
        run_id=p.continues,
    )
    tools.outputs.write(run, log, values)
    return signed


def run_verify(run: Run, tools: Tools, log: RunLog) -> VerifyReport:
    tools.outputs.forget_verified(run)
    p = prepared(run, tools, log, steps_of("verify", run))
    assert p.policy is not None
    login_step.login(run, tools, log)
    image, known = p.image, {}
    if image is None:  # verify --tag T with no digest and no outputs: what T names now
        first = p.target.tags[0]
        digest = (
            build_step.DRY_RUN_DIGEST
            if run.settings.dry_run
            else read_digest(tools, log, "verify", f"{p.target.repository}:{first}")
        )
        image, known = p.target.at(digest), {first: digest}
        log.bind_image(image.repository, image.digest)
        log.info(f"{p.target.repository}:{first} names {digest} at the registry: verifying that")
    report = kept(
        log,
        "verify",
        verify_step.verify,
        run,
        tools,
        log,
        p.target,
        image,
        p.policy,
        check_tags=() if run.staged_here else p.target.tags,
        known_tags=known,
        second=p.second_policy,
    )
    tools.outputs.write_verified(
        run, {"VERIFIED_IMAGE_REF": str(image)}
    )  # it raised unless verified
    return report


def run_attest(run: Run, tools: Tools, log: RunLog) -> attest_step.AttestReport:
    from provenance_tasks.steps import attest as attest_step

    p = prepared(run, tools, log, steps_of("attest", run))
    assert p.image is not None and p.signing is not None
    login_step.login(run, tools, log)
    sign_step.ensure_at_registry(run, tools, log, p.image)
    try:  # the build's inputs, where this job has them: the predicate names the Dockerfile
        inputs: build_inputs.BuildInputs | None = build_inputs.resolve(run)
    except InputError:
        inputs = None
    return kept(
        log,
        "attest",
        attest_step.attest,
        run,
        tools,
        log,
        p.image,
        p.signing,
        inputs,
        extra=p.predicates,
    )


def run_verify_attestation(run: Run, tools: Tools, log: RunLog) -> attest_step.AttestReport:
    from provenance_tasks.steps import attest_verify

    p = prepared(run, tools, log, steps_of("verify_attestation", run))
    assert p.policy is not None
    login_step.login(run, tools, log)
    if p.image is None:
        raise InputError(
            "no digest to verify the provenance of",
            hint="pass --digest, or run where the build's outputs are",
        )
    return kept(
        log, "attestations", attest_verify.verify_attestations, run, tools, log, p.image, p.policy
    )
