"""Everything a run will do, resolved and checked before anything is built, pushed or signed."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from provenance_tasks.adapters.cosign import Cosign
from provenance_tasks.adapters.services import github_id_token, unreachable
from provenance_tasks.annotations import merge_annotations, parse_annotation_flag
from provenance_tasks.ci.oidc import SIGSTORE_AUDIENCE, claim, decode_claims, token_problem
from provenance_tasks.errors import InputError, ToolError
from provenance_tasks.models import (
    KMS_SCHEMES,
    Annotation,
    CertificateSigning,
    IdentityPolicy,
    IdentityToken,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
    SigningMaterial,
    VerificationPolicy,
)
from provenance_tasks.references import validate_digest, validate_repository, validate_tag
from provenance_tasks.sigstore import chain_trusted_root
from provenance_tasks.steps.session import Session

ID_TOKEN_VARIABLE = "SIGSTORE_ID_TOKEN"  # noqa: S105 - a variable name

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
    return "keyless" if session.ci.keyless_by_default else "key"


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
        return KeylessSigning(identity_token(session))
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
    if not session.ci.local_keys:
        raise InputError("key mode needs a key", hint="pass --key (a file, env://VAR or a KMS URI)")
    return KeySigning(str(local_key_folder(session) / "cosign.key"))  # made on first use


# What signing needs, checked before anything is pushed: steps/preflight.py runs the three side
# by side.


def signing_cosign(session: Session) -> None:
    """cosign is there, new enough, and its major can sign in the format asked for."""
    cosign = session.cosign  # detect now: a missing or too old cosign is bad input (exit 2)
    if session.settings.bundle_format == "new" and cosign.major < 3:
        raise InputError(
            "cosign 2 can't sign an image in the new bundle format (its sign has no such flag)",
            hint="set provenance.bundle_format to classic, or install cosign 3.0.3+",
        )


def signing_key(session: Session, material: SigningMaterial) -> None:
    """The key opens with the password the run has: `cosign public-key` decrypts it. It needs
    no probed major, so it runs beside the probe (preflight)."""
    if not isinstance(material, KeySigning | CertificateSigning):
        return
    key = material.key
    local_to_make = "://" not in key and not Path(key).exists()  # made on first use, locally
    if key.startswith(KMS_SCHEMES) or local_to_make:
        return
    binary = shutil.which(session.settings.cosign)
    if binary is None:
        return  # signing_cosign says what is missing
    Cosign(binary, 0, session.redactor, env=session.cosign_environment()).check_key(key)


def signing_services(session: Session, material: SigningMaterial) -> None:
    """The token endpoint and the Sigstore services the signing needs answer."""
    s = session.settings
    if s.dry_run:
        return
    if isinstance(material, KeylessSigning) and material.token.from_endpoint:
        # Asked once now, so a job without `id-token: write` fails before the push; its claims
        # name the signer (a reusable workflow's own file, which no variable names).
        token = fresh_token(session, material.token)
        check_token(session, token)
        session.token_claims = decode_claims(token.value)
    services = session.sigstore.services(keyless=isinstance(material, KeylessSigning), tlog=s.tlog)
    for name, url in services.items():
        reason = unreachable(url)
        if reason is not None:
            raise ToolError(
                f"{name} at {url} does not answer: {reason}",
                hint="check provenance.fulcio_url / rekor_url / tsa_url and the network; "
                "sign with --key --no-tlog where no Sigstore can be reached",
            )


def fresh_token(session: Session, token: IdentityToken) -> IdentityToken:
    """The token to sign with now: the given one, or a new one from the runner's endpoint."""
    if not token.from_endpoint:
        return token
    assert token.request_url is not None and token.request_token is not None
    value = github_id_token(token.request_url, token.request_token, SIGSTORE_AUDIENCE)
    session.redactor.add(value)
    session.log.mask([value])  # GitHub: the runner masks it too, wherever a tool might print it
    return IdentityToken(value, token.source)


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
        if not path.is_file() and not (s.key is None and session.ci.local_keys):
            raise InputError(f"cannot read public key {path}", hint="pass --public-key")
        return KeyPolicy(str(path))
    identity = s.identity or _claimed_identity(session) or session.ci.identity
    issuer = s.issuer or session.ci.issuer
    if not identity or not issuer:
        missing = "--identity" if not identity else "--issuer"
        raise InputError(
            f"{mode} verification needs the signer's identity and issuer",
            hint=f"pass {missing} (or run in GitLab CI or GitHub Actions)",
        )
    if not s.certificate_chain:
        return IdentityPolicy(identity, issuer)
    chain = (session.cwd / s.certificate_chain).resolve()
    if not chain.is_file():
        raise InputError(f"cannot read certificate chain {chain}", hint="pass --certificate-chain")
    sigstore = session.sigstore
    if not sigstore.private and s.bundle_format == "new" and s.tlog:
        raise InputError(
            "certificate mode with the new bundle needs a trusted root: cosign 3 verifies it "
            "against one, made here from your chain and your Sigstore's trusted_root.json",
            hint="set provenance.trusted_root (with rekor_url) for your Sigstore, or use the "
            "classic bundle format",
        )
    chain_root = None
    if sigstore.private or s.bundle_format == "new":
        chain_root = chain_trusted_root(
            chain, sigstore.trusted_root, session.private_folder() / "trust"
        )
    return IdentityPolicy(identity, issuer, chain=chain, chain_root=chain_root)


def _claimed_identity(session: Session) -> str | None:
    """The signer a token asked for during this run names, where the provider says which claim."""
    name = session.ci.identity_claim
    found = claim(session.token_claims, name) if name else None
    return f"{session.ci.identity_prefix}{found}" if found else None


def expected_digest(session: Session) -> str | None:
    return validate_digest(session.settings.digest, "--digest") if session.settings.digest else None


def identity_token(session: Session) -> IdentityToken:
    """The keyless signer's token, checked on its face now: a missing, expired or wrong-audience
    token is bad input (exit 2), found before anything is pushed."""
    env = session.environ
    if session.ci.id_token:
        token = IdentityToken(session.ci.id_token, session.ci.id_token_source or ID_TOKEN_VARIABLE)
    elif env.get(ID_TOKEN_VARIABLE):
        token = IdentityToken(env[ID_TOKEN_VARIABLE], ID_TOKEN_VARIABLE)
    elif env.get("ACTIONS_ID_TOKEN_REQUEST_URL") and env.get("ACTIONS_ID_TOKEN_REQUEST_TOKEN"):
        return IdentityToken(
            source="the GitHub Actions token endpoint",
            request_url=env["ACTIONS_ID_TOKEN_REQUEST_URL"],
            request_token=env["ACTIONS_ID_TOKEN_REQUEST_TOKEN"],
        )
    else:
        raise InputError(
            "keyless signing needs an OIDC token and none was found", hint=session.ci.keyless_hint
        )
    check_token(session, token)
    return token


def check_token(session: Session, token: IdentityToken) -> None:
    import time

    problem = token_problem(token.value or "", now=time.time())
    if problem:
        raise InputError(f"the ID token in {token.source} {problem}", hint=session.ci.keyless_hint)
