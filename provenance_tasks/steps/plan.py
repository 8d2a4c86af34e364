"""Everything a run will do, resolved and checked before anything is built, pushed or signed.

`resolve(run, tools, steps)` reads the settings, the CI context and the files they name, and returns
one `Plan`: the target, the build's inputs, the signing material and the verification policy. It
starts no process and writes nothing; the tool probes are steps/preflight.py's, run once after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from provenance_tasks.annotations import parse_annotation_flag
from provenance_tasks.errors import InputError
from provenance_tasks.models import (
    LOCAL_KEY_NAME,
    Annotation,
    CertificateSigning,
    IdentityPolicy,
    ImageRef,
    KeylessSigning,
    KeyPolicy,
    KeyRef,
    KeySigning,
    SigningMaterial,
    Target,
    VerificationPolicy,
)
from provenance_tasks.predicates import Predicate
from provenance_tasks.predicates import parse as parse_predicate
from provenance_tasks.references import (
    split_image_ref,
    validate_digest,
    validate_repository,
    validate_tag,
)
from provenance_tasks.steps import build_inputs, outputs
from provenance_tasks.steps.build_inputs import BuildInputs
from provenance_tasks.steps.keys import check_key_ref, second_signer
from provenance_tasks.steps.outputs import Outputs
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.tokens import identity_token
from provenance_tasks.tag_rules import expand as expand_tags
from provenance_tasks.tag_rules import is_rule


@dataclass(frozen=True)
class Plan:
    """What one task will do. `steps` names them, for the summary's "not run" rows."""

    steps: tuple[str, ...]
    target: Target
    build: BuildInputs | None = None
    mode: str | None = None  # key, keyless or certificate
    signing: SigningMaterial | None = None
    policy: VerificationPolicy | None = None
    image: ImageRef | None = None  # sign and verify: the digest given, or an earlier run's;
    # None for `verify --tag T` alone: the digest T names at the registry, read after login
    staging_tag: str | None = None  # publish: the tag `build --stage` had to push, to remove
    continues: str | None = None  # the run whose outputs this task takes up (its run id)
    predicates: tuple[Predicate, ...] = ()  # files to attach as attestations, read and checked
    second: KeySigning | None = None  # provenance.second_key: a co-signature
    second_policy: KeyPolicy | None = None  # and what verifies it
    notes: tuple[str, ...] = ()  # what the plan decided that the log must say


def resolve(
    run: Run, tools: Tools, steps: tuple[str, ...], read_from: Outputs | None = None
) -> Plan:
    """The plan of a task running `steps` (build, sign, verify), every input checked now.
    `read_from`: where earlier outputs are read (the tools', unless a set plans an image)."""
    read_from = read_from or tools.outputs
    building = "build" in steps
    tagged = building or "sign" in steps or "publish" in steps or bool(run.settings.tags)
    notes: list[str] = []
    plan_target = target(run, notes) if tagged else untagged_target(run, read_from)
    build = build_inputs.resolve(run) if building else None
    signs = "sign" in steps or "attest" in steps
    verifies = "verify" in steps or "verify-attestation" in steps
    mode = signing_mode(run) if signs or verifies else None
    signing = signing_material(run, mode) if mode and signs else None
    policy = verification_policy(run, tools, mode, signing) if mode and verifies else None
    image, staging, continues = None, None, None
    if not building:
        found = None if run.settings.digest else read_from.earlier(run)
        staging = found.values.get("IMAGE_STAGING_TAG") or None if found else None
        continues = found.run_id if found else None
        by_tag = steps == ("verify",) and found is None and not run.settings.digest
        if not (by_tag and plan_target.tags):  # verify --tag T alone: the registry says which
            image = given_image(run, plan_target, found)
        expected = plan_target.ci_annotations
        if not signs:  # a verify of another job's signature: what it can know
            expected = expected_of_signer(run, found)
            if found is not None and not found.complete and run.ci.own_annotations:
                notes.append(
                    f"{found.where} doesn't name the signing job: its "
                    f"{', '.join(run.ci.own_annotations)} are checked only with the "
                    "report"
                )
        repository = image.repository if image else plan_target.repository
        plan_target = Target(repository, plan_target.tags, expected, plan_target.user_annotations)
    attached = attachments(run, build) if "attest" in steps else ()
    second, second_policy = second_signer(run, signs=signs, verifies=verifies)
    return Plan(
        steps,
        plan_target,
        build,
        mode,
        signing,
        policy,
        image,
        staging,
        continues,
        attached,
        second,
        second_policy,
        tuple(notes),
    )


def attachments(run: Run, build: BuildInputs | None) -> tuple[Predicate, ...]:
    """The --predicate files, each read and checked against its type now; one meant for a
    platform must name one the build makes."""
    found = tuple(parse_predicate(spec, run.cwd) for spec in run.settings.predicates)
    for predicate in found:
        if build is not None and predicate.platform and predicate.platform not in build.platforms:
            raise InputError(
                f"--predicate for {predicate.platform}, which the build doesn't make",
                hint=f"build it (--platform {predicate.platform}), or drop @{predicate.platform}",
            )
    return found


def expected_of_signer(run: Run, found: outputs.Earlier | None) -> tuple[Annotation, ...]:
    """The annotations a verify task expects of a signature another job made.

    With that job's outputs (a later job of the pipeline, with its dotenv): every annotation,
    the signing job's own values (its id and URL) as it recorded them. Without (another
    pipeline, a release script, --digest): what identifies the build (commit, ref, project),
    not who ran which pipeline or job, which only the signing run knew.
    """
    ci = run.ci
    if found is None or not found.complete:
        return tuple(a for a in ci.annotations if a.key not in ci.run_annotations)
    expected = []
    for annotation in ci.annotations:
        variable = ci.own_annotations.get(annotation.key)
        if variable is None:
            expected.append(annotation)
        elif found.values.get(variable):
            expected.append(
                Annotation(annotation.key, found.values[variable], f"{variable} in {found.where}")
            )
        else:
            raise InputError(
                f"{found.where} has no {variable}: the signing job's {annotation.key} can't be "
                "checked",
                hint="verify with the dotenv of the job that signed, or pass --digest",
            )
    return tuple(expected)


def target(run: Run, notes: list[str] | None = None) -> Target:
    """The repository, the tags (rules expanded: what they decided goes in `notes`) and the
    annotations, every value checked now."""
    s = run.settings
    repository = s.image or run.ci.default_repository
    if not repository:
        raise InputError("no image repository", hint=run.ci.image_hint)
    repository = validate_repository(
        repository, "--image" if s.image else f"the {run.ci.provider} default"
    )
    tags = s.tags or run.ci.default_tags
    source = "--tag" if s.tags else f"the {run.ci.provider} default"
    if any(is_rule(tag) for tag in tags):  # type=sha, type=ref, type=semver, type=raw
        if run.ci.refs is None:
            raise InputError(
                f"tag rules need a commit and a ref, which {run.ci.detected} doesn't give",
                hint="pass literal tags (--tag TAG)",
            )
        tags, said = expand_tags(tuple(tags), run.ci.refs, source)
        if notes is not None:
            notes += said
    if not tags:
        raise InputError(
            "no tag to push",
            hint="pass --tag TAG (repeatable), or a tag rule "
            "that holds for this pipeline (type=sha always does)",
        )
    tags = tuple(dict.fromkeys(validate_tag(tag, source) for tag in tags))
    user = tuple(parse_annotation_flag(text, "--annotation") for text in s.annotations)
    t = Target(repository, tags, run.ci.annotations, user)
    for tag in tags:  # values are checked now, not halfway through signing
        t.annotations_for(tag)
    return t


def signing_mode(run: Run) -> str:
    s = run.settings
    if s.mode == "keyless" and (s.key or s.certificate):
        raise InputError(
            "key and keyless signing were both asked for",
            hint="drop --key/--certificate for keyless signing, or choose --mode key",
        )
    if s.mode != "auto":
        return s.mode
    if s.certificate:
        return "certificate"
    if s.key or s.public_key:  # verify --public-key means a key signature, even in keyless CI
        return "key"
    return "keyless" if run.ci.keyless_by_default else "key"


def signing_material(run: Run, mode: str) -> SigningMaterial:
    s = run.settings
    if mode == "keyless":
        if not s.tlog:
            raise InputError(
                "--no-tlog is for key and certificate modes only",
                hint="keyless signatures need the transparency log",
            )
        return KeylessSigning(identity_token(run))
    if mode == "certificate":
        if not (s.key and s.certificate and s.certificate_chain):
            raise InputError(
                "certificate mode needs a key, its certificate and the chain",
                hint="pass --key, --certificate and --certificate-chain",
            )
        return CertificateSigning(
            check_key_ref(run, s.key, "signing key"),
            Path(check_key_ref(run, s.certificate, "certificate")),
            Path(check_key_ref(run, s.certificate_chain, "certificate chain")),
        )
    if s.key:
        return KeySigning(check_key_ref(run, s.key, "signing key"))
    if not run.ci.local_keys:
        raise InputError("key mode needs a key", hint=run.ci.key_hint)
    return KeySigning(str(local_key_path(run)))  # made on first use


def local_key_folder(run: Run) -> Path:
    return (run.cwd / run.settings.key_folder).resolve()


def local_key_path(run: Run) -> Path:
    """The private half of the pair a laptop signs with, made on first use (steps/sign.py)."""
    return local_key_folder(run) / LOCAL_KEY_NAME


def verification_policy(
    run: Run, tools: Tools, mode: str, signing: SigningMaterial | None = None
) -> VerificationPolicy:
    s = run.settings
    if mode == "key":
        public = s.public_key
        if not public and isinstance(signing, KeySigning) and _no_public_half(signing.ref):
            # Verify what this run signs against the key it signs with (preflight derives it).
            return KeyPolicy(signing.key, of_signing_key=signing.key)
        if not public:
            key = KeyRef.parse(s.key or str(local_key_path(run)))
            # A file's public half is guessed only by cosign's own naming, PREFIX.key.
            half = key.public_half() if key.is_kms or key.is_pair_file else None
            if half is None:
                raise InputError(
                    "cannot tell the public key for verify",
                    hint="pass --public-key (a file, env://VAR or a KMS URI)",
                )
            public = str(half)
        given = KeyRef.parse(public)
        if given.is_kms or given.is_env:
            return KeyPolicy(public)
        path = (run.cwd / public).resolve()
        if not path.is_file() and not (s.key is None and run.ci.local_keys):
            raise InputError(f"cannot read public key {path}", hint="pass --public-key")
        return KeyPolicy(str(path))
    # On GitHub, preflight replaces it by what the run's token names (a reusable workflow).
    identity = s.identity or run.ci.identity
    issuer = s.issuer or run.ci.issuer
    if not identity or not issuer:
        missing = "--identity" if not identity else "--issuer"
        raise InputError(
            f"{mode} verification needs the signer's identity and issuer",
            hint=f"pass {missing} (or run in GitLab CI or GitHub Actions)",
        )
    if not s.certificate_chain:
        return IdentityPolicy(identity, issuer)
    chain = (run.cwd / s.certificate_chain).resolve()
    if not chain.is_file():
        raise InputError(f"cannot read certificate chain {chain}", hint="pass --certificate-chain")
    sigstore = tools.sigstore
    if not sigstore.private and s.bundle_format != "classic" and s.tlog:
        raise InputError(
            "certificate mode with the new bundle needs a trusted root: cosign 3 verifies it "
            "against one, made here from your chain and your Sigstore's trusted_root.json",
            hint="set provenance.trusted_root (with rekor_url) for your Sigstore, or use the "
            "classic bundle format",
        )
    return IdentityPolicy(identity, issuer, chain=chain)  # its trusted root: preflight's


def _no_public_half(key: KeyRef) -> bool:
    """A key whose public half is nowhere to be read: in a variable, or a file with no .pub
    beside it (a key still to be made, locally, will get one)."""
    path, public = key.path, key.public_path
    if path is None or public is None:
        return key.is_env  # a KMS key: cosign reads the public half from the KMS itself
    return path.exists() and not (key.is_pair_file and public.is_file())


def given_image(run: Run, target: Target, found: outputs.Earlier | None) -> ImageRef:
    """The image to sign or verify: --digest, else IMAGE_REF of an earlier run of this commit
    and repository (an output another build wrote would get the wrong digest signed)."""
    s = run.settings
    if s.digest:
        return target.at(validate_digest(s.digest, "--digest"))
    if found is None:
        raise InputError(
            "no digest to work on",
            hint="pass --digest sha256:..., or run where IMAGE_REF (dotenv or report) is available",
        )
    _same_build(run, found)
    repository, digest = split_image_ref(found.ref)
    if s.image and validate_repository(s.image, "--image") != repository:
        raise InputError(
            f"IMAGE_REF names {repository}, not --image {s.image}",
            hint="pass --digest for this repository",
        )
    return ImageRef(repository, digest)


def _same_build(run: Run, found: outputs.Earlier) -> None:
    commit = run.ci.labels.get(outputs.REVISION) or None
    source = run.ci.labels.get(outputs.SOURCE) or None
    again = "run build (or build-sign-verify) for this commit, or pass --digest for the image"
    if found.commit is None and found.source is None and (commit or source):
        raise InputError(
            f"{found.where} names no commit or repository: it can't be told apart from another "
            "build's",
            hint=again,
        )
    if found.commit != commit:
        raise InputError(
            f"{found.where} was written for commit {found.commit or '(none)'}, not this run's "
            f"{commit or '(none)'}",
            hint=again,
        )
    if found.source != source:
        raise InputError(
            f"{found.where} was written for {found.source or 'no repository'}, not this run's "
            f"{source or '(none)'}",
            hint=again,
        )


def untagged_target(run: Run, read_from: Outputs) -> Target:
    """verify without --tag: the repository from --image, IMAGE_REF or the CI default."""
    s = run.settings
    repository = s.image or run.ci.default_repository
    if not repository:
        found = read_from.earlier(run)
        repository = split_image_ref(found.ref)[0] if found else None
    if not repository:
        raise InputError("no image repository", hint=run.ci.image_hint)
    user = tuple(parse_annotation_flag(t, "--annotation") for t in s.annotations)
    return Target(validate_repository(repository, "--image"), (), run.ci.annotations, user)
