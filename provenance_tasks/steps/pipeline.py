"""What each task runs: resolve one plan, probe once, then the steps in order, then the outputs.

Everything that can be wrong up front is found by `plan.resolve` and `preflight` before anything
is built, pushed or signed. Each function here is what one invoke task runs; the tasks only turn
flags into Settings, and get back what the steps returned.
"""

from __future__ import annotations

from provenance_tasks.steps import build as build_step
from provenance_tasks.steps import login as login_step
from provenance_tasks.steps import outputs, plan
from provenance_tasks.steps import sign as sign_step
from provenance_tasks.steps import verify as verify_step
from provenance_tasks.steps.preflight import preflight
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog


def _prepared(run: Run, tools: Tools, log: RunLog, steps: tuple[str, ...]) -> plan.Plan:
    log.plan(steps)
    planned = plan.resolve(run, tools, steps)
    log.bind_image(planned.target.repository, planned.image.digest if planned.image else None)
    return preflight(run, tools, log, planned)


def run_build(run: Run, tools: Tools, log: RunLog) -> build_step.BuildResult:
    p = _prepared(run, tools, log, ("build", "audit"))
    assert p.build is not None
    login_step.login(run, tools, log)
    built = build_step.build(run, tools, log, p.target, p.build)
    outputs.write_all(run, log, outputs.image_outputs(built.repository, built.digest, built.tags))
    return built


def run_sign(run: Run, tools: Tools, log: RunLog) -> sign_step.SignResult:
    p = _prepared(run, tools, log, ("sign",))
    assert p.image is not None and p.mode is not None and p.signing is not None
    login_step.login(run, tools, log)
    sign_step.ensure_at_registry(run, tools, log, p.image)
    signed = sign_step.sign(run, tools, log, p.target, p.image, p.mode, p.signing)
    values = outputs.image_outputs(p.image.repository, p.image.digest, p.target.tags)
    outputs.write_all(run, log, values)
    return signed


def run_verify(run: Run, tools: Tools, log: RunLog) -> verify_step.VerifyReport:
    p = _prepared(run, tools, log, ("verify",))
    assert p.image is not None and p.policy is not None
    login_step.login(run, tools, log)
    try:
        return verify_step.verify(run, tools, log, p.target, p.image, p.policy,
                                  check_tags=p.target.tags)  # fmt: skip
    finally:
        outputs.write_all(run, log, None)


def run_build_sign_verify(run: Run, tools: Tools, log: RunLog) -> verify_step.VerifyReport:
    p = _prepared(run, tools, log, ("build", "audit", "sign", "verify"))
    assert p.build is not None and p.mode is not None and p.signing is not None
    assert p.policy is not None
    login_step.login(run, tools, log)
    built = build_step.build(run, tools, log, p.target, p.build)
    values = outputs.image_outputs(built.repository, built.digest, built.tags)
    sign_step.sign(run, tools, log, p.target, built.image, p.mode, p.signing)
    try:
        # The audit just read every tag at the registry: not read again. One format: the signed.
        return verify_step.verify(
            run,
            tools,
            log,
            p.target,
            built.image,
            p.policy,
            check_tags=() if run.settings.dry_run else built.tags,
            known_tags=dict.fromkeys(built.tags, built.digest),
            formats=(run.settings.bundle_format,),
        )
    finally:
        if not run.settings.dry_run:
            outputs.write_all(run, log, values)
