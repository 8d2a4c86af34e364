"""What each task runs: resolve one plan, probe once, then the steps in order, then the outputs.

Everything that can be wrong up front is found by `plan.resolve` and `preflight` before anything
is pushed or signed (a local build, which pushes nothing, runs beside the probes). `run_step` is
the one way in (api.py, and each image of a set): the build pipelines are here, the tasks that
work on an earlier build's digest in on_digest.py, and each returns what its steps returned.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from provenance_tasks.adapters.registry import fallback_tag
from provenance_tasks.errors import InputError, ProvenanceError, VerificationError
from provenance_tasks.settings import bundle_formats
from provenance_tasks.steps import build as build_step
from provenance_tasks.steps import login as login_step
from provenance_tasks.steps import outputs, plan
from provenance_tasks.steps import publish as publish_step
from provenance_tasks.steps import sign as sign_step
from provenance_tasks.steps import verify as verify_step
from provenance_tasks.steps.beside import pair, shares_referrers
from provenance_tasks.steps.preflight import preflight
from provenance_tasks.steps.referrers import stored_in
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.verify_checks import VerifyReport

if TYPE_CHECKING:  # imported where attestations are made or read: most runs make none
    pass

T = TypeVar("T")
A = TypeVar("A")
B = TypeVar("B")
P = ParamSpec("P")


def run_step(task: str, run: Run, tools: Tools, log: RunLog) -> object:
    """The pipeline of `task` (build, sign, attest, verify, verify_attestation, publish,
    build_sign_verify, promote). The run's report is its caller's (api.Provenance.close)."""
    from provenance_tasks.steps import on_digest, promote

    pipelines: dict[str, Callable[[Run, Tools, RunLog], object]] = {
        "build": run_build,
        "sign": on_digest.run_sign,
        "attest": on_digest.run_attest,
        "verify": on_digest.run_verify,
        "verify_attestation": on_digest.run_verify_attestation,
        "publish": on_digest.run_publish,
        "build_sign_verify": run_build_sign_verify,
        "promote": promote.run_promote,
    }
    return pipelines[task](run, tools, log)


def kept(log: RunLog, name: str, step: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`step(*args, **kwargs)`, what it returned (or what a failed verify found) kept for the
    report: the steps only return, the pipeline that called them records."""
    try:
        result = step(*args, **kwargs)
    except VerificationError as failed:
        if failed.report is not None:
            log.keep(name, failed.report)
        raise
    log.keep(name, result)
    return result


def steps_of(task: str, run: Run) -> tuple[str, ...]:
    """The steps `task` plans, in order: the summary lists those that never ran."""
    if task == "build":  # --stage: publish later, once verified (the publish task)
        return ("build", "push") if run.settings.stage else ("build", "push", "publish", "audit")
    if task == "build_sign_verify":
        attesting = _attesting(run)
        return (
            "build",
            "push",
            "sign",
            *(("attest",) if attesting else ()),
            "verify",
            *(("verify-attestation",) if attesting else ()),
            "publish",
            "audit",
        )
    if task == "publish":
        return ("verify", "publish", "audit")
    return (task.replace("_", "-"),)  # sign, verify, attest, verify-attestation


def _attesting(run: Run) -> bool:
    """Signed SLSA provenance (and the predicates handed in), verified before any tag moves."""
    return run.settings.attest or bool(run.settings.predicates)


def _resolved(run: Run, tools: Tools, log: RunLog, steps: tuple[str, ...]) -> plan.Plan:
    log.plan(steps)
    planned = plan.resolve(run, tools, steps)
    for note in planned.notes:
        log.info(note)
    log.bind_image(planned.target.repository, planned.image.digest if planned.image else None)
    log.run_id = planned.continues or ""  # "": planned, and it continues no earlier run
    return planned


def prepared(run: Run, tools: Tools, log: RunLog, steps: tuple[str, ...]) -> plan.Plan:
    return preflight(run, tools, log, _resolved(run, tools, log, steps))


def _beside_preflight(
    run: Run,
    tools: Tools,
    log: RunLog,
    planned: plan.Plan,
    work: Callable[[RunLog], T],
) -> tuple[plan.Plan, T]:
    """The probes and `work` (login, and a build that pushes nothing) side by side, so the key's
    decryption no longer adds to the build's time. What `work` prints is kept and printed once
    the probes passed: a run that bad input stops shows one message, and nothing was pushed."""
    if login_step.credentials(run) is not None:
        tools.private_docker_config()  # made before the threads: every tool sees the login
    if run.settings.dry_run:
        return preflight(run, tools, log, planned), work(log)
    beside = log.deferred()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="build")
    done = pool.submit(work, beside)
    try:
        completed = preflight(run, tools, log, planned)
        if isinstance(done.exception() if done.done() else None, InputError):
            raise done.exception()  # type: ignore[misc]  # bad input (no buildx): one message
        beside.go_live(log)  # the build's lines stream from here on, as they come
        return completed, done.result()
    except BaseException:
        # A failed probe, ^C or SIGTERM: the build is ended (its buildx killed), so the error
        # comes now, not when a long build would have finished; a failed probe's build output
        # is never shown.
        tools.cancelled.set()
        raise
    finally:
        pool.shutdown(wait=True)


def _login_and_build(
    run: Run, tools: Tools, planned: plan.Plan
) -> Callable[[RunLog], build_step.LocalBuild]:
    assert planned.build is not None
    inputs = planned.build

    def work(log: RunLog) -> build_step.LocalBuild:
        login_step.login(run, tools, log)
        return build_step.build_local(run, tools, log, planned.target, inputs)

    return work


def _built(
    run: Run, log: RunLog, before: outputs.Earlier | None, built: build_step.BuildResult
) -> None:
    """The build's results for the summary and the report, and what an earlier build of the
    same commit here had made."""
    log.bind_image(built.repository, built.digest)
    log.keep("build", built)
    again = outputs.rebuild(run, before, built.repository, built.digest)
    if again is not None and not run.settings.dry_run:
        log.keep("rebuild", again)
        if again.previous_digest == built.digest:
            log.info(f"this commit built {built.digest} here before too: reproduced")
        else:
            log.info(
                f"this commit built {again.previous_digest} here before; now "
                f"{built.digest}: {again.note}"
            )


def run_build(run: Run, tools: Tools, log: RunLog) -> build_step.BuildResult:
    before = tools.outputs.invalidate(run)  # a build that fails leaves no earlier run's digest
    staged = run.settings.stage  # publish later, once verified (the publish task)
    planned = _resolved(run, tools, log, steps_of("build", run))
    work = _login_and_build(run, tools, planned)
    p, local = _beside_preflight(run, tools, log, planned, work)
    assert p.build is not None
    log.keep("source", local.facts)
    built = build_step.push(run, tools, log, p.target, p.build, local, staged=staged)
    built = replace(built, platforms=p.build.platforms)
    _built(run, log, before, built)
    published: list[str] = []
    try:
        if not staged:
            publish_tags(run, tools, log, built, published)
    finally:
        values = outputs.image_outputs(
            run, built.repository, built.digest, built.tags, tuple(published), built.staging_tag
        )
        tools.outputs.write(run, log, values)
    return built


def publish_tags(
    run: Run,
    tools: Tools,
    log: RunLog,
    built: build_step.BuildResult,
    done: list[str],
    *,
    verified: bool = False,
) -> None:
    """The tags on the digest (unless buildx pushed them), then each read back from the
    registry (not in a dry run). `done` says which tags moved, even when this fails."""
    try:
        if built.tags_pushed:
            done += built.tags
        else:
            publish_step.publish(run, tools, log, built, done)
    except ProvenanceError:
        if verified:  # a protected or immutable tag: what holds, said before the error
            left = [tag for tag in built.tags if tag not in done]
            log.warning(
                f"{built.image} is signed and verified, not published: "
                f"{', '.join(left)} stay where they were"
            )
        raise
    if not run.settings.dry_run:
        publish_step.audit_tags(tools, log, built)


def both(
    run: Run,
    tools: Tools,
    log: RunLog,
    first: Callable[[RunLog], A],
    second: Callable[[RunLog], B],
    *,
    name: str,
    series: str | None = None,
) -> tuple[A, B]:
    """`first` and `second` (`name`) side by side (steps/beside.py), or one after the other in a
    dry run (its commands print in order) or where `series` says why they must."""
    if run.settings.dry_run or series is not None:
        if series is not None and not run.settings.dry_run:
            log.info(f"{name} in series: {series}")
        return first(log), second(log)
    return pair(tools, log, first, second, name=name.replace(" ", "-"))


def signed_and_verified(
    run: Run,
    tools: Tools,
    log: RunLog,
    p: plan.Plan,
    built: build_step.BuildResult,
    *,
    started: float,
) -> VerifyReport:
    """Sign and attest the pushed digest, then verify both: each pair side by side (both()),
    each result kept for the report. Returns the verify's report; raises if anything failed."""
    inputs, mode, signing, policy = p.build, p.mode, p.signing, p.policy
    assert inputs is not None and mode is not None and signing is not None
    assert policy is not None  # named: a closure sees the narrowed names, not p's fields

    def signed(into: RunLog) -> object:
        return kept(
            log,
            "sign",
            sign_step.sign,
            run,
            tools,
            into,
            p.target,
            built.image,
            mode,
            signing,
            media_type=built.media_type,
            second=p.second,
        )

    def attested(into: RunLog) -> object:
        return kept(
            log,
            "attest",
            attest_step.attest,
            run,
            tools,
            into,
            built.image,
            signing,
            inputs,
            media_type=built.media_type,
            started=started,
            extra=p.predicates,
        )

    # The tags are published after this, on what was verified: nothing to check at the
    # registry yet. One format: the one signed.
    def verified(into: RunLog) -> VerifyReport:
        return kept(
            log,
            "verify",
            verify_step.verify,
            run,
            tools,
            into,
            p.target,
            built.image,
            policy,
            formats=bundle_formats(run.settings),
            media_type=built.media_type,
            second=p.second_policy,
        )

    def attestations_verified(into: RunLog) -> object:
        return kept(
            log,
            "attestations",
            attest_verify.verify_attestations,
            run,
            tools,
            into,
            built.image,
            policy,
            media_type=built.media_type,
            just_attested=True,
            extra=p.predicates,
        )

    if _attesting(run):
        from provenance_tasks.steps import attest as attest_step
        from provenance_tasks.steps import attest_verify

        # A laptop's key pair is made on first use by sign: made now, or attest beside it
        # would look for a key that doesn't exist yet.
        sign_step.ensure_local_key(run, tools, log, signing)
        index = f"{stored_in(run, built.repository)}:{fallback_tag(built.digest)}"
        shared = shares_referrers(run.settings, index)
        both(run, tools, log, signed, attested, name="sign and attest", series=shared)
        name = "verify and verify-attestation"  # reads only: always side by side
        report, _ = both(run, tools, log, verified, attestations_verified, name=name)
    else:
        signed(log)
        report = verified(log)
    return report


def run_build_sign_verify(run: Run, tools: Tools, log: RunLog) -> VerifyReport:
    started = time.time()
    before = tools.outputs.invalidate(run)  # a build that fails leaves no earlier run's digest
    planned = _resolved(run, tools, log, steps_of("build_sign_verify", run))
    work = _login_and_build(run, tools, planned)
    p, local = _beside_preflight(run, tools, log, planned, work)
    assert p.build is not None
    early_tags = run.settings.push_then_sign  # buildx may push them itself, then
    log.keep("source", local.facts)
    built = build_step.push(run, tools, log, p.target, p.build, local, staged=not early_tags)
    built = replace(built, platforms=p.build.platforms)
    _built(run, log, before, built)
    published: list[str] = []
    early = run.settings.push_then_sign
    try:
        if early:
            log.warning(
                "provenance.push_then_sign: the tags are published before signing; a "
                "sign or verify that fails leaves them on an unsigned image"
            )
            publish_tags(run, tools, log, built, published)

        report = signed_and_verified(run, tools, log, p, built, started=started)
        if not early:
            publish_tags(run, tools, log, built, published, verified=True)
        if not run.settings.dry_run:
            report.tags = dict.fromkeys(built.tags, built.digest)  # what the audit just read
        return report
    except BaseException:
        # A staging tag names an image nobody verified: removed, unless publish already did.
        if built.staging_tag and len(published) < len(built.tags) and not run.settings.dry_run:
            publish_step.remove_staging_tag(tools, log, built)
        raise
    finally:
        values = outputs.image_outputs(
            run, built.repository, built.digest, built.tags, tuple(published)
        )
        tools.outputs.write(run, log, values)
