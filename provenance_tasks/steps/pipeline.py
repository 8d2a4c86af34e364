"""The whole job: plan everything, then login, build with push, sign, verify, write the outputs.

Each function here is what one invoke task runs; the tasks only turn flags into Settings.
"""

from __future__ import annotations

from provenance_tasks.annotations import parse_annotation_flag
from provenance_tasks.errors import InputError
from provenance_tasks.references import split_image_ref, validate_repository
from provenance_tasks.steps import build as build_step
from provenance_tasks.steps import login as login_step
from provenance_tasks.steps import outputs, plan
from provenance_tasks.steps import sign as sign_step
from provenance_tasks.steps import verify as verify_step
from provenance_tasks.steps.preflight import preflight
from provenance_tasks.steps.session import Session


def run_build(session: Session) -> build_step.BuildResult:
    session.plan("build", "audit")
    target = plan.target(session)
    session.bind_image(target.repository)
    plan.build_inputs(session)
    plan.build_args(session)
    preflight(session, None, build=True)
    login_step.login(session)
    result = build_step.build(session, target)
    values = outputs.image_outputs(result.repository, result.digest, result.tags)
    outputs.write_all(session, values)
    return result


def run_sign(session: Session) -> sign_step.SignResult:
    session.plan("sign")
    target = plan.target(session)
    mode = plan.signing_mode(session)
    material = plan.signing_material(session, mode)
    preflight(session, material, build=False)
    repository, digest = _image(session, target)
    session.bind_image(repository, digest)
    login_step.login(session)
    sign_step.ensure_at_registry(session, f"{repository}@{digest}")
    result = sign_step.sign(session, target, f"{repository}@{digest}", mode, material)
    outputs.write_all(session, outputs.image_outputs(repository, digest, target.tags))
    return result


def run_verify(session: Session, *, check_tags: bool) -> verify_step.VerifyReport:
    session.plan("verify")
    target = plan.target(session) if session.settings.tags else _untagged_target(session)
    mode = plan.signing_mode(session)
    policy = plan.verification_policy(session, mode)
    repository, digest = _image(session, target)
    session.bind_image(repository, digest)
    target = plan.Target(repository, target.tags, target.user_annotations)
    login_step.login(session)
    try:
        return verify_step.verify(
            session,
            target,
            digest,
            policy,
            check_tags=target.tags if check_tags else (),
        )
    finally:
        outputs.write_all(session, None)


def run_build_sign_verify(session: Session) -> verify_step.VerifyReport:
    # Everything that can be wrong up front is found before anything is built, pushed or signed.
    session.plan("build", "audit", "sign", "verify")
    target = plan.target(session)
    session.bind_image(target.repository)
    plan.build_inputs(session)
    plan.build_args(session)
    mode = plan.signing_mode(session)
    material = plan.signing_material(session, mode)
    preflight(session, material, build=True)  # the key's own problems are named first
    policy = plan.verification_policy(session, mode)
    login_step.login(session)
    built = build_step.build(session, target)
    values = outputs.image_outputs(built.repository, built.digest, built.tags)
    sign_step.sign(session, target, built.reference, mode, material)
    if session.settings.dry_run:
        formats = (session.settings.bundle_format,)
        verify_step.verify(session, target, built.digest, policy, formats=formats)
        return verify_step.VerifyReport(built.reference, policy.describe(), [])
    try:
        # The audit just read every tag at the registry: not read again. One format: the signed.
        return verify_step.verify(
            session,
            target,
            built.digest,
            policy,
            check_tags=built.tags,
            known_tags=dict.fromkeys(built.tags, built.digest),
            formats=(session.settings.bundle_format,),
        )
    finally:
        outputs.write_all(session, values)


def _image(session: Session, target: plan.Target) -> tuple[str, str]:
    """The repository and digest to sign or verify: flags, else IMAGE_REF of an earlier run."""
    digest = plan.expected_digest(session)
    if digest:
        return target.repository, digest
    ref = outputs.read_image_ref(session)
    if not ref:
        raise InputError(
            "no digest to work on",
            hint="pass --digest sha256:..., or run where IMAGE_REF (dotenv or report) is available",
        )
    repository, digest = split_image_ref(ref)
    if (
        session.settings.image
        and validate_repository(session.settings.image, "--image") != repository
    ):
        raise InputError(
            f"IMAGE_REF names {repository}, not --image {session.settings.image}",
            hint="pass --digest for this repository",
        )
    return repository, digest


def _untagged_target(session: Session) -> plan.Target:
    """verify without --tag: the repository from --image, IMAGE_REF or the CI default."""
    s = session.settings
    repository = s.image or session.ci.default_repository
    if not repository:
        ref = outputs.read_image_ref(session)
        repository = split_image_ref(ref)[0] if ref else None
    if not repository:
        raise InputError("no image repository", hint="pass --image REPOSITORY")
    user = tuple(parse_annotation_flag(t, "--annotation") for t in s.annotations)
    return plan.Target(validate_repository(repository, "--image"), (), user)
