"""Sign IMAGE@DIGEST, never a tag: one signature per pushed tag, carrying that tag as `tag`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from provenance_tasks.adapters.cosign_env import shown
from provenance_tasks.adapters.cosign_flags import signing_config_for
from provenance_tasks.adapters.process import render
from provenance_tasks.causes import outlasted_retries
from provenance_tasks.errors import CommandFailed, InputError
from provenance_tasks.models import (
    CertificateSigning,
    ImageRef,
    KeylessSigning,
    KeySigning,
    SigningMaterial,
    Target,
)
from provenance_tasks.references import registry_of
from provenance_tasks.retry import with_retries
from provenance_tasks.settings import bundle_formats
from provenance_tasks.steps.calls import Request
from provenance_tasks.steps.lookup import read_digest
from provenance_tasks.steps.plan import local_key_folder
from provenance_tasks.steps.platforms import signed_children
from provenance_tasks.steps.referrers import settle
from provenance_tasks.steps.run import Run, Tools
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sigstore_writes import within
from provenance_tasks.steps.tokens import fresh_token


@dataclass(frozen=True)
class Signature:
    tag: str
    annotations: dict[str, str]  # encoded values, as cosign stored them


@dataclass(frozen=True)
class SignResult:
    mode: str
    reference: str
    signatures: tuple[Signature, ...]
    bundle_format: str
    tlog: bool
    platforms: tuple[dict[str, str], ...] = ()  # each platform manifest signed: platform, digest


def ensure_local_key(run: Run, tools: Tools, log: RunLog, material: SigningMaterial) -> None:
    """Locally, key mode needs no setup: a key pair with an empty password is made on first use."""
    if not isinstance(material, KeySigning):
        return
    folder = local_key_folder(run)
    path = material.ref.path
    if path is None or path.parent != folder:
        return
    # Once per run: the images of a set sign with the one pair the first of them made.
    tools.once(("local-key", str(folder)), lambda: _make_local_key(run, tools, log, material))


def _make_local_key(run: Run, tools: Tools, log: RunLog, material: KeySigning) -> None:
    folder = local_key_folder(run)
    if Path(material.key).exists():
        return
    if run.settings.dry_run:
        log.info("dry-run: would make a key pair", folder=str(folder))
        return
    key, pub = tools.cosign.generate_key_pair(folder)
    ignore = folder / ".gitignore"
    ignore.write_text("*\n")  # the private key must never be committed
    log.info("made a local signing key pair (empty password)", key=str(key), public=str(pub))


def ensure_at_registry(run: Run, tools: Tools, log: RunLog, image: ImageRef) -> None:
    """The digest to sign must be at the registry: cosign signs a digest that isn't there and
    exits 0, leaving a signature for nothing. (build-sign-verify knows: its audit read it.)"""
    if run.settings.dry_run:
        return
    reference = str(image)
    try:
        found = read_digest(tools, log, "sign", reference, lag=True)
    except CommandFailed as exc:
        if exc.cause.kind != "not-yet-there":
            raise
        raise InputError(
            f"{reference} is not at the registry: nothing to sign",
            hint="pass the digest the build pushed (IMAGE_DIGEST of its dotenv)",
        ) from None
    if found != image.digest:
        raise InputError(f"the registry answers {found} for {reference}")


def sign_once(
    run: Run,
    tools: Tools,
    log: RunLog,
    reference: str | list[str],
    material: SigningMaterial,
    annotations: dict[str, str],
    fmt: str = "classic",
) -> None:
    """One signature in format `fmt` (of each reference, in one cosign call), retried on
    registry failures; each attempt's cosign --timeout fits the budget. A retry after a partial
    upload may leave a second, identical signature: verify accepts any that matches."""
    refs = (reference,) if isinstance(reference, str) else tuple(reference)
    # One of a set of images: one cosign call for all of them. One registry per call: a 429 or
    # an outage of one is never another's.
    key = ("sign", registry_of(refs[0]), material, tuple(sorted(annotations.items())), fmt)
    tools.meet(
        Request(
            key,
            refs,
            lambda group: _sign(run, tools, log, group, material, annotations, fmt),
            note=lambda others: log.info(
                f"signed in one cosign call with {others} other image(s) of the set"
            ),
            shared=outlasted_retries,
        )
    )


def _sign(
    run: Run,
    tools: Tools,
    log: RunLog,
    refs: list[str],
    material: SigningMaterial,
    annotations: dict[str, str],
    fmt: str,
) -> None:
    reference: str | list[str] = refs[0] if len(refs) == 1 else refs
    first = refs[0]
    what = first if len(refs) == 1 else f"{len(refs)} manifests"
    s = run.settings

    config = bundle_signing_config(run, tools, material, fmt)
    root = certificate_root(tools, material)

    def attempt(left: float) -> object:
        token = token_file(run, tools, log, material, write=True)
        try:
            return tools.cosign.within(left).sign(
                reference,
                material,
                annotations,
                tlog=s.tlog,
                new_bundle_format=fmt == "new",
                identity_token=token,
                signing_config=config,
                trusted_root=root,
                on_line=log.tool_output("sign"),
            )
        finally:
            if token is not None:
                token.unlink(missing_ok=True)  # the token lives on disk only while cosign runs

    gated = within(tools.sigstore_writes, log, "sign", len(refs) if s.tlog else 0, attempt)
    with_retries(log, tools.retry_policy, "sign", f"sign {what}", registry_of(first), gated)


def bundle_signing_config(
    run: Run, tools: Tools, material: SigningMaterial, fmt: str
) -> Path | None:
    """What cosign 3 writes a new bundle by; classic signatures and cosign 2 take none."""
    if fmt != "new" or tools.cosign.major < 3:
        return None
    keyless = isinstance(material, KeylessSigning)
    return signing_config_for(
        tools.sigstore, keyless=keyless, tlog=run.settings.tlog, folder=tools.private_folder()
    )


def certificate_root(tools: Tools, material: SigningMaterial) -> Path | None:
    """cosign 3 checks a certificate's leaf against its trusted root when it signs: a CA of your
    own goes into one beside the instance's logs (sigstore.chain_trusted_root), made once."""
    if not isinstance(material, CertificateSigning) or tools.cosign.major < 3:
        return None
    from provenance_tasks.sigstore import chain_trusted_root

    chain, base = material.chain, tools.sigstore.trusted_root
    folder = tools.private_folder() / "trust"
    return tools.once(("chain-root", str(chain)), lambda: chain_trusted_root(chain, base, folder))


def token_file(
    run: Run, tools: Tools, log: RunLog, material: SigningMaterial, *, write: bool
) -> Path | None:
    """Where cosign reads the ID token from: a 0600 file in the run's private folder, written
    anew for each attempt (a GitHub token is asked for each time: they live five minutes), one
    of its own for each cosign: sign and attest run side by side, each removing its own after."""
    if not isinstance(material, KeylessSigning):
        return None
    path = tools.private_folder() / "id-token"
    if write:
        path = path.with_name(f"id-token-{secrets.token_hex(4)}")
        token = fresh_token(run, log, material.token)
        path.touch(mode=0o600)
        path.write_text(token.value or "")
    return path


def sign(
    run: Run,
    tools: Tools,
    log: RunLog,
    target: Target,
    image: ImageRef,
    mode: str,
    material: SigningMaterial,
    *,
    media_type: str | None = None,
    second: KeySigning | None = None,
) -> SignResult:
    """A signature of the digest per tag (`tag=T`: the tags name it), then, for an index, one of
    each platform manifest by its own digest, with the annotations every tag shares. `second`
    (provenance.second_key) signs all of it again, beside."""
    s = run.settings
    reference = str(image)
    if not s.tlog:
        log.warning(
            "signing without a transparency log (--no-tlog): fine for private and air-gapped "
            "setups, but nobody can audit these signatures publicly"
        )
    ensure_local_key(run, tools, log, material)
    if tools.cosign.major >= 3 and "classic" in bundle_formats(s):
        said = (
            "the classic format on cosign 3 passes flags cosign deprecates, which have no "
            "replacement for it (cosign_flags.KEPT_DEPRECATED); their warnings are not shown"
        )
        tools.once(("kept-flags",), lambda: log.info(said))
    signatures: list[Signature] = []
    with log.step("sign", f"Sign {reference} ({mode})") as record:
        formats = bundle_formats(s)  # both: each, for the verifiers that read only one
        for fmt in formats:
            for tag in target.tags:
                annotations = target.annotations_for(tag)
                if s.dry_run:
                    argv = tools.cosign.sign_argv(
                        reference,
                        material,
                        annotations,
                        tlog=s.tlog,
                        new_bundle_format=fmt == "new",
                        identity_token=token_file(run, tools, log, material, write=False),
                        signing_config=bundle_signing_config(run, tools, material, fmt),
                        trusted_root=certificate_root(tools, material),
                    )
                    env = shown(tools.cosign.env)
                    log.info("dry-run", command=render(argv, run.redactor, env))
                else:
                    sign_once(run, tools, log, reference, material, annotations, fmt)
                signatures.append(Signature(tag, annotations))
        children = signed_children(run, tools, log, "sign", image, media_type)
        if children:
            refs = [str(ImageRef(image.repository, child.digest)) for child in children]
            names = ", ".join(child.platform for child in children)
            log.info(f"signing each platform manifest by its own digest: {names}")
            for fmt in formats:
                sign_once(run, tools, log, refs, material, target.annotations_for(None), fmt)
        if second is not None and not s.dry_run:
            log.info(f"co-signing with provenance.second_key ({second.key})")
            refs = [str(ImageRef(image.repository, child.digest)) for child in children]
            for fmt in formats:
                for tag in target.tags:
                    sign_once(run, tools, log, reference, second, target.annotations_for(tag), fmt)
                if refs:
                    sign_once(run, tools, log, refs, second, target.annotations_for(None), fmt)
        # cosign lists its bundles as "empty" artifacts in the fallback index: typed there.
        settle(
            run,
            tools,
            log,
            "sign",
            image.repository,
            [image.digest, *(child.digest for child in children)],
        )
        record.detail = {"signatures": len(signatures) + len(children), "mode": mode}
    signed = tuple({"platform": c.platform, "digest": c.digest} for c in children)
    return SignResult(mode, reference, tuple(signatures), s.bundle_format, s.tlog, signed)
