"""`cosign attest` and `cosign verify-attestation` command lines, per major.

- cosign 2 attests by service URLs (`--fulcio-url`, `--rekor-url`, `--tlog-upload=false`), as its
  sign does, and writes the classic `.att` attestation.
- cosign 3's attest has no service URLs, no `--tlog-upload` and no `--new-bundle-format`: it always
  writes a bundle, to the services a signing config names. A private instance or a run without
  the transparency log gets a signing config written for it (`signing_config_for`); the public
  instance with a log needs none (cosign reads it from TUF).
- verify-attestation takes the trust and log flags verify takes, less cosign 3's bundle-format
  flag, which it doesn't have. Each major reads what it wrote: cosign 2 can't find cosign 3's
  bundles on a registry without the referrers API.
"""

from __future__ import annotations

import json
from pathlib import Path

from provenance_tasks.adapters.cosign import Cosign, material_flags
from provenance_tasks.adapters.cosign_flags import sign_flags, verify_flags
from provenance_tasks.models import (
    IdentityPolicy,
    KeylessSigning,
    KeyPolicy,
    SigningMaterial,
    VerificationPolicy,
)
from provenance_tasks.sigstore import SigstoreInstance

SIGNING_CONFIG_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"


def attest_argv(
    cosign: Cosign,
    image_ref: str,
    material: SigningMaterial,
    predicate_type: str,
    predicate: Path,
    *,
    tlog: bool,
    identity_token: Path | None,
    signing_config: Path | None,
    trusted_root: Path | None = None,
) -> list[str]:
    """`trusted_root`: cosign 3's, when it isn't the instance's (a certificate's own chain)."""
    if "@" not in image_ref:
        raise ValueError(f"refusing to attest a tag, not a digest: {image_ref}")
    keyless = isinstance(material, KeylessSigning)
    argv = [cosign.binary, "attest", "--yes", *material_flags(material),
            "--type", predicate_type, "--predicate", str(predicate)]  # fmt: skip
    if cosign.major >= 3:
        if identity_token is not None:
            argv += ["--identity-token", str(identity_token)]  # a path, never the token
        if signing_config is not None:
            argv += ["--signing-config", str(signing_config)]
        root = trusted_root or cosign.sigstore.trusted_root
        if root is not None:
            argv += ["--trusted-root", str(root)]
    else:
        argv += sign_flags(2, cosign.sigstore, keyless=keyless, tlog=tlog,
                           new_bundle_format=False, identity_token=identity_token)  # fmt: skip
    if cosign.timeout:
        argv += ["--timeout", f"{int(cosign.timeout)}s"]
    return [*argv, image_ref]


def verify_attestation_argv(
    cosign: Cosign, image_ref: str, policy: VerificationPolicy, predicate_type: str, *, tlog: bool
) -> list[str]:
    argv = [cosign.binary, "verify-attestation", "--output", "json", "--type", predicate_type]
    if isinstance(policy, KeyPolicy):
        argv += ["--key", policy.public_key]
    else:
        argv += ["--certificate-identity", policy.identity,
                 "--certificate-oidc-issuer", policy.issuer]  # fmt: skip
    identity = isinstance(policy, IdentityPolicy)
    flags = verify_flags(
        cosign.major, cosign.sigstore, certificate=identity, tlog=tlog, new_bundle_format=True,
        chain=policy.chain if isinstance(policy, IdentityPolicy) else None,
        chain_root=policy.chain_root if isinstance(policy, IdentityPolicy) else None,
    )  # fmt: skip
    argv += [f for f in flags if not f.startswith("--new-bundle-format")]
    if cosign.timeout:
        argv += ["--timeout", f"{int(cosign.timeout)}s"]
    return [*argv, image_ref]


def signing_config_for(
    sigstore: SigstoreInstance, *, keyless: bool, tlog: bool, folder: Path
) -> Path | None:
    """The signing config cosign 3's attest signs by: the user's (with a log), none for the
    public instance with a log, else one written here naming exactly the services to use."""
    if tlog and sigstore.signing_config is not None:
        return sigstore.signing_config
    if tlog and not sigstore.private:
        return None

    def service(url: str) -> dict[str, object]:
        return {"url": url, "majorApiVersion": 1, "validFor": {"start": "1970-01-01T00:00:00Z"}}

    config = {
        "mediaType": SIGNING_CONFIG_TYPE,
        "caUrls": [service(sigstore.fulcio)] if keyless else [],
        "oidcUrls": [],
        "rekorTlogUrls": [service(sigstore.rekor)] if tlog else [],
        "tsaUrls": [service(sigstore.tsa)] if sigstore.tsa else [],
        "rekorTlogConfig": {"selector": "ANY"},
        "tsaConfig": {"selector": "ANY"},
    }
    path = folder / "attest-signing-config.json"
    path.write_text(json.dumps(config, indent=2))
    return path
