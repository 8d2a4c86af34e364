"""`cosign attest` and `cosign verify-attestation` command lines, per major and format.

An attestation is written in the format of the image's signatures (`provenance.bundle_format`):
- classic: the `.att` tag, which both majors and slsa-verifier read. cosign 2 attests by service
  URLs, as its sign does; cosign 3 by the same kept, deprecated flags as its classic sign
  (`cosign_flags.KEPT_DEPRECATED`). No bundle lands among the image's referrers, where cosign
  3.0-3.1's verify would take it for the image's signature (sigstore/cosign#4573).
- new: a bundle (cosign 3 only), by a signing config: the user's, none for the public instance
  with a log (cosign reads it from TUF), else one written for the run (`signing_config_for`).
- both: each of them.

verify-attestation takes the trust and log flags verify takes, and reads the format asked for.
"""

from __future__ import annotations

from pathlib import Path

from provenance_tasks.adapters.cosign import Cosign, material_flags
from provenance_tasks.adapters.cosign_flags import sign_flags, signing_config_for, verify_flags
from provenance_tasks.models import (
    IdentityPolicy,
    KeylessSigning,
    KeyPolicy,
    SigningMaterial,
    VerificationPolicy,
)


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
    new_bundle_format: bool = False,
) -> list[str]:
    """`trusted_root`: cosign 3's, when it isn't the instance's (a certificate's own chain)."""
    if "@" not in image_ref:
        raise ValueError(f"refusing to attest a tag, not a digest: {image_ref}")
    argv = [
        cosign.binary,
        "attest",
        "--yes",
        *material_flags(material),
        "--type",
        predicate_type,
        "--predicate",
        str(predicate),
    ]
    argv += sign_flags(
        cosign.major,
        cosign.sigstore,
        keyless=isinstance(material, KeylessSigning),
        tlog=tlog,
        new_bundle_format=new_bundle_format and cosign.major >= 3,
        identity_token=identity_token,
        signing_config=signing_config,
        trusted_root=trusted_root,
    )
    if cosign.timeout:
        argv += ["--timeout", f"{int(cosign.timeout)}s"]
    return [*argv, image_ref]


def verify_attestation_argv(
    cosign: Cosign,
    image_ref: str,
    policy: VerificationPolicy,
    predicate_type: str,
    *,
    tlog: bool,
    new_bundle_format: bool = False,
) -> list[str]:
    argv = [cosign.binary, "verify-attestation", "--output", "json", "--type", predicate_type]
    if isinstance(policy, KeyPolicy):
        argv += ["--key", policy.public_key]
    else:
        argv += [
            "--certificate-identity",
            policy.identity,
            "--certificate-oidc-issuer",
            policy.issuer,
        ]
    identity = isinstance(policy, IdentityPolicy)
    argv += verify_flags(
        cosign.major,
        cosign.sigstore,
        certificate=identity,
        tlog=tlog,
        new_bundle_format=new_bundle_format,
        chain=policy.chain if isinstance(policy, IdentityPolicy) else None,
        chain_root=policy.chain_root if isinstance(policy, IdentityPolicy) else None,
    )
    if cosign.timeout:
        argv += ["--timeout", f"{int(cosign.timeout)}s"]
    return [*argv, image_ref]


__all__ = ["attest_argv", "signing_config_for", "verify_attestation_argv"]
