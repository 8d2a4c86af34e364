"""Everything a run will do, resolved and checked before anything is built, pushed or signed."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from provenance_tasks.adapters.cosign import (
    KMS_SCHEMES,
    CertificateSigning,
    IdentityPolicy,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
    SigningMaterial,
    VerificationPolicy,
)
from provenance_tasks.annotations import merge_annotations, parse_annotation_flag
from provenance_tasks.ci.base import Annotation
from provenance_tasks.errors import InputError
from provenance_tasks.references import validate_digest, validate_repository, validate_tag
from provenance_tasks.steps.session import Session

# Build args with these names carry secrets: they belong in --secret, which never reaches a layer.
_SECRET_ARG = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|PRIVATE_KEY|CREDENTIAL|API_KEY", re.I)


@dataclass(frozen=True)
class Target:
    """The image: a repository, its tags, and the annotations each tag's signature carries."""

    repository: str
    tags: tuple[str, ...]
    user_annotations: tuple[Annotation, ...]

    def annotations_for(self, session: Session, tag: str | None) -> dict[str, str]:
        """Encoded annotations for one signature (tag None: the ones common to every tag)."""
        merged = merge_annotations(session.ci.annotations, self.user_annotations, tag or "")
        if tag is None:
            merged.pop("tag", None)
        return merged


def target(session: Session) -> Target:
    s = session.settings
    repository = s.image or session.ci.default_repository
    if not repository:
        raise InputError(
            "no image repository", hint="pass --image REPOSITORY or set provenance.image"
        )
    repository = validate_repository(
        repository, "--image" if s.image else f"the {session.ci.provider} default"
    )
    tags = s.tags or session.ci.default_tags
    if not tags:
        raise InputError("no tag to push", hint="pass --tag TAG (repeatable)")
    source = "--tag" if s.tags else f"the {session.ci.provider} default"
    tags = tuple(dict.fromkeys(validate_tag(tag, source) for tag in tags))
    user = tuple(parse_annotation_flag(text, "--annotation") for text in s.annotations)
    t = Target(repository, tags, user)
    for tag in tags:  # values are checked now, not halfway through signing
        t.annotations_for(session, tag)
    return t


def build_args(session: Session) -> dict[str, str]:
    args: dict[str, str] = {}
    for text in session.settings.build_args:
        name, sep, value = text.partition("=")
        if not sep:
            value = session.environ.get(name, "")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InputError(
                f"build arg {text!r} is not NAME=value", hint="pass --build-arg NAME=value"
            )
        if _SECRET_ARG.search(name) or any(secret in value for secret in session.redactor.secrets):
            raise InputError(
                f"build arg {name} carries a secret; build args end up in the image's history",
                hint=f"pass it as a build secret: --secret id={name.lower()},env={name}",
            )
        args[name] = value
    return args


def build_inputs(session: Session) -> tuple[Path, Path]:
    context = (session.cwd / session.settings.context).resolve()
    if not context.is_dir():
        raise InputError(f"build context {context} is not a folder", hint="pass --context FOLDER")
    dockerfile = context / "Dockerfile"
    if session.settings.file:
        dockerfile = (session.cwd / session.settings.file).resolve()
    if not dockerfile.is_file():
        raise InputError(f"no Dockerfile at {dockerfile}", hint="pass --file PATH")
    return context, dockerfile


def signing_mode(session: Session) -> str:
    s = session.settings
    if s.mode == "keyless" and (s.key or s.certificate):
        raise InputError(
            "key and keyless signing were both asked for",
            hint="drop --key/--certificate for keyless signing, or choose --mode key",
        )
    if s.mode != "auto":
        return s.mode
    if s.certificate:
        return "certificate"
    if s.key:
        return "key"
    return "keyless" if session.ci.provider in ("gitlab", "github") else "key"


def _check_key_ref(session: Session, key: str, what: str) -> str:
    if "://" in key:
        scheme = key.split("://", 1)[0] + "://"
        if scheme == "env://":
            if not session.environ.get(key[len("env://") :]):
                raise InputError(
                    f"{what} {key}: the variable is not set",
                    hint=f"export {key[len('env://') :]} with the PEM key",
                )
            return key
        if scheme not in KMS_SCHEMES:
            raise InputError(
                f"{what} {key}: unknown KMS scheme {scheme}",
                hint=f"use a file, env://VAR, or one of {', '.join(KMS_SCHEMES)}",
            )
        return key
    path = (session.cwd / key).resolve()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise InputError(f"cannot read {what} {path}", hint="check the path and its permissions")
    return str(path)


def signing_material(session: Session, mode: str) -> SigningMaterial:
    s = session.settings
    if mode == "keyless":
        if not s.tlog:
            raise InputError(
                "--no-tlog is for key and certificate modes only",
                hint="keyless signatures need the transparency log",
            )
        if not _has_id_token(session):
            from provenance_tasks.ci.gitlab import GITLAB_ID_TOKEN_HINT

            hint = {
                "gitlab": f"add to the job: {GITLAB_ID_TOKEN_HINT}",
                "github": "give the job `permissions: id-token: write`",
            }.get(session.ci.provider, "set SIGSTORE_ID_TOKEN, or sign with --key")
            raise InputError("keyless signing needs an OIDC token and none was found", hint=hint)
        return KeylessSigning()
    if mode == "certificate":
        if not (s.key and s.certificate and s.certificate_chain):
            raise InputError(
                "certificate mode needs a key, its certificate and the chain",
                hint="pass --key, --certificate and --certificate-chain",
            )
        return CertificateSigning(
            _check_key_ref(session, s.key, "signing key"),
            Path(_check_key_ref(session, s.certificate, "certificate")),
            Path(_check_key_ref(session, s.certificate_chain, "certificate chain")),
        )
    if s.key:
        return KeySigning(_check_key_ref(session, s.key, "signing key"))
    if session.ci.provider != "local":
        raise InputError("key mode needs a key", hint="pass --key (a file, env://VAR or a KMS URI)")
    return KeySigning(str(local_key_folder(session) / "cosign.key"))  # made on first use


def signing_tools(session: Session, material: SigningMaterial) -> None:
    """cosign is there, new enough, and can open the signing key (a file or env:// key)."""
    cosign = session.cosign  # detect: missing or too old is an InputError
    if isinstance(material, KeySigning | CertificateSigning):
        key = material.key
        local_to_make = isinstance(material, KeySigning) and not Path(key).exists()
        if not key.startswith(KMS_SCHEMES) and not local_to_make:
            cosign.check_key(key)


def build_tools(session: Session) -> None:
    """docker and buildx are there, and the builder asked for exists (a dry run runs none)."""
    import shutil

    from provenance_tasks.adapters.process import last_lines, run

    if session.settings.dry_run:
        return
    if not shutil.which("docker"):
        raise InputError(
            "docker is not installed (not found on PATH)",
            hint="install the docker CLI and its buildx plugin (ci/install-tools on Debian 12)",
        )
    env = {**os.environ, **session.docker.environ()}
    checks = [(["docker", "buildx", "version"], "the docker buildx plugin is missing")]
    if session.settings.builder:
        builder = session.settings.builder
        checks.append(
            (["docker", "buildx", "inspect", builder], f"no buildx builder named {builder!r}")
        )
    for argv, problem in checks:
        done = run(argv, redactor=session.redactor, env=env, check=False)
        if done.returncode != 0:
            raise InputError(
                f"{problem}: {''.join(last_lines(done.stderr))}",
                hint="see `docker buildx ls` for the builders; install buildx 0.13 or newer",
            )


def local_key_folder(session: Session) -> Path:
    return (session.cwd / session.settings.key_folder).resolve()


def verification_policy(session: Session, mode: str) -> VerificationPolicy:
    s = session.settings
    if mode == "key":
        public = s.public_key
        if not public:
            key = s.key or str(local_key_folder(session) / "cosign.key")
            if key.startswith(KMS_SCHEMES):
                public = key
            elif key.endswith(".key") and "://" not in key:
                public = key[: -len(".key")] + ".pub"
            else:
                raise InputError(
                    "cannot tell the public key for verify",
                    hint="pass --public-key (a file, env://VAR or a KMS URI)",
                )
        if public.startswith(KMS_SCHEMES) or public.startswith("env://"):
            return KeyPolicy(public)
        path = (session.cwd / public).resolve()
        if not path.is_file() and not (s.key is None and session.ci.provider == "local"):
            raise InputError(f"cannot read public key {path}", hint="pass --public-key")
        return KeyPolicy(str(path))
    identity = s.identity or session.ci.identity
    issuer = s.issuer or session.ci.issuer
    if not identity or not issuer:
        missing = "--identity" if not identity else "--issuer"
        raise InputError(
            f"{mode} verification needs the signer's identity and issuer",
            hint=f"pass {missing} (or run in GitLab CI or GitHub Actions)",
        )
    chain = Path(s.certificate_chain).resolve() if s.certificate_chain else None
    root = Path(s.trusted_root).resolve() if s.trusted_root else None
    return IdentityPolicy(identity, issuer, chain=chain, trusted_root=root)


def expected_digest(session: Session) -> str | None:
    return validate_digest(session.settings.digest, "--digest") if session.settings.digest else None


def _has_id_token(session: Session) -> bool:
    env = session.environ
    return bool(
        session.ci.id_token
        or env.get("SIGSTORE_ID_TOKEN")
        or env.get("ACTIONS_ID_TOKEN_REQUEST_URL")
    )
