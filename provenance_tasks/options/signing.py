"""The settings of signing and verifying: the signer, the Sigstore, cosign's own, and what verify
expects."""

from __future__ import annotations

from provenance_tasks.options.option import (
    ON_A_DIGEST,
    PROMOTES,
    SIGNS,
    SIGNS_OR_VERIFIES,
    VERIFIES,
    WHOLE_JOB,
    Option,
)

SIGNING: tuple[Option, ...] = (
    # sign
    Option(
        key="mode",
        default="auto",
        help="signing mode: auto, key, keyless or certificate",
        tasks=SIGNS_OR_VERIFIES,
    ),
    Option(
        key="key",
        default=None,
        help="private key: a file, env://VAR or a KMS URI (password from COSIGN_PASSWORD)",
        tasks=SIGNS_OR_VERIFIES,
    ),
    Option(
        key="public_key",
        default=None,
        help="public key for verify (default: KEY with .pub, or the KMS URI)",
        tasks=VERIFIES,
    ),
    Option(
        key="certificate",
        default=None,
        help="signing certificate (certificate mode)",
        tasks=SIGNS,
    ),
    Option(
        key="certificate_chain",
        default=None,
        help="CA chain of the certificate (certificate mode and its verify)",
        tasks=SIGNS_OR_VERIFIES,
    ),
    Option(
        key="annotations",
        default=[],
        help="key=value annotation added to every signature (repeatable)",
        tasks=SIGNS_OR_VERIFIES,
        flag="annotation",
    ),
    Option(
        key="second_key",
        default=None,
        help=(
            "a key (file or KMS URI) that co-signs the index and every platform next to the main "
            "signature, and is verified too (podman/CRI-O take no CI keyless)"
        ),
    ),
    Option(
        key="second_public_key",
        default=None,
        help="the second key's public key for verify (default: KEY with .pub, or the KMS URI)",
    ),
    Option(
        key="tlog",
        default=True,
        help="sign and verify without a transparency log (key and certificate modes; warns)",
        tasks=SIGNS_OR_VERIFIES,
        flag="no_tlog",
    ),
    Option(
        key="bundle_format",
        default="classic",
        help=(
            "signature format: classic (default, read by every verifier of image signatures), new "
            "(cosign 3), or both (cosign 3: each, for each reader)"
        ),
        tasks=WHOLE_JOB | PROMOTES | {"sign"},
    ),
    Option(
        key="referrers",
        default="auto",
        help=(
            "where cosign 3's bundles are listed on a registry: auto (its referrers API, else the "
            "sha256-<digest> fallback tag, whose index is repaired to name each bundle's type), tag"
            " (the fallback tag always, typed), or api (the API: a registry without it is refused "
            "before the build)"
        ),
        tasks=SIGNS,
    ),
    Option(
        key="key_folder",
        default=".provenance/keys",
        help="where a laptop's key pair is made on first use",
    ),
    # the Sigstore instance (see provenance_tasks/sigstore.py): None everywhere is the public one
    Option(
        key="fulcio_url",
        default=None,
        help="Fulcio of a private Sigstore",
    ),
    Option(
        key="rekor_url",
        default=None,
        help="Rekor of a private Sigstore",
    ),
    Option(
        key="tsa_url",
        default=None,
        help="an RFC 3161 timestamp authority (off by default)",
    ),
    Option(
        key="signing_config",
        default=None,
        help="signing_config.json naming the services (cosign 3 reads it)",
    ),
    Option(
        key="trusted_root",
        default=None,
        help="trusted_root.json of a private Sigstore (its keys and CAs)",
        tasks=VERIFIES,
    ),
    Option(
        key="unsafe_ignore_sct",
        default=False,
        help="don't check certificates' SCT (warned every time)",
    ),
    # cosign's own settings that are the user's to make, passed on on purpose
    Option(
        key="cosign_repository",
        default=None,
        help="COSIGN_REPOSITORY: where signatures are stored",
    ),
    Option(
        key="cosign_docker_media_types",
        default=None,
        help="COSIGN_DOCKER_MEDIA_TYPES: docker media types",
    ),
    # verify
    Option(
        key="identity",
        default=None,
        help="expected certificate identity (default: derived from CI)",
        tasks=VERIFIES,
    ),
    Option(
        key="builder_id",
        default=None,
        help=(
            "expected SLSA builder.id of the provenance (default: this CI's configuration, e.g. "
            "$CI_PROJECT_URL//$CI_CONFIG_PATH)"
        ),
        tasks=WHOLE_JOB | PROMOTES | {"verify-attestation"},
    ),
    Option(
        key="issuer",
        default=None,
        help="expected OIDC issuer (default: derived from CI)",
        tasks=VERIFIES,
    ),
    Option(
        key="digest",
        default=None,
        help="digest to sign or verify (default: IMAGE_REF of an earlier run)",
        tasks=ON_A_DIGEST,
    ),
    Option(
        key="promote_from",
        default=None,
        help="promote: REPO@DIGEST to verify and copy (default: IMAGE_REF of the build's "
        "outputs here; its signer: --identity/--issuer or --public-key, else the run's own)",
        tasks=PROMOTES,
        flag="from_",
    ),
    Option(
        key="promote_to",
        default=None,
        help="promote: the repository to copy to, sign at, verify at, then tag (--tag)",
        tasks=PROMOTES,
        flag="to",
    ),
    Option(
        key="attest",
        default=True,
        help="don't attach (and verify) signed SLSA v1 provenance",
        tasks=WHOLE_JOB | PROMOTES,
        flag="no_attest",
    ),
    Option(
        key="predicates",
        default=[],
        help=(
            "TYPE[@os/arch]=FILE attached as a signed attestation: cyclonedx, spdxjson, "
            "slsaprovenance1 or a type URI (repeatable)"
        ),
        tasks=WHOLE_JOB | {"attest"},
        flag="predicate",
    ),
    Option(
        key="stage",
        default=False,
        help="push by digest only, no tag: the publish task tags it once verified",
        tasks=frozenset({"build"}),
    ),
    Option(
        key="push_then_sign",
        default=False,
        help=(
            "publish the tags right after the push, before signing (the tutorial's order: a sign "
            "that fails leaves them on an unsigned image)"
        ),
        tasks=WHOLE_JOB,
    ),
)
