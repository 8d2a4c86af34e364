"""The flags that point each cosign major at a Sigstore instance, for signing and for verifying.

What each major accepts was found by running it against a Sigstore of our own
(tests/testbed/sigstore) and is pinned by tests/unit/adapters/test_cosign.py:

- cosign 3 signs the new bundle by a signing config (the public one from TUF, or
  `--signing-config FILE`), or by `--use-signing-config=false` and service URLs. The classic format
  with a transparency log is refused unless `--use-signing-config=false` is given ("must provide
  --new-bundle-format or --bundle ... with --signing-config"), so classic always signs by URLs. A
  private instance's trust comes from `--trusted-root`, for signing and verifying alike, and a
  signing config together with URLs is refused.
- cosign 2 signs by `--fulcio-url`/`--rekor-url`/`--timestamp-server-url` and takes its trust from
  the `SIGSTORE_*` variables (see `provenance_tasks.sigstore.cosign2_trust_files`); its `sign` has
  no new-bundle format at all.

Only `--no-tlog` brings `--insecure-ignore-tlog`; `--insecure-ignore-sct` comes only where the
trust has no CT log to check an SCT against, or with the named unsafe setting.
"""

from __future__ import annotations

from pathlib import Path

from provenance_tasks.sigstore import SigstoreInstance


def sign_flags(
    major: int,
    sigstore: SigstoreInstance,
    *,
    keyless: bool,
    tlog: bool,
    new_bundle_format: bool,
    identity_token: Path | None = None,
) -> list[str]:
    """Services, trust and format for `cosign sign` (and, from Step 8, `cosign attest`)."""
    flags: list[str] = []
    if identity_token is not None:
        # A path, never the token: argv is visible to every process on the machine.
        flags += ["--identity-token", str(identity_token)]
    if major >= 3:
        by_config = (
            tlog
            and new_bundle_format
            and (sigstore.signing_config is not None or not sigstore.private)
        )
        if by_config:
            if sigstore.signing_config is not None:
                flags += ["--signing-config", str(sigstore.signing_config)]
        else:
            flags += ["--use-signing-config=false"]
            flags += _service_urls(sigstore, keyless=keyless, tlog=tlog)
            if not tlog:
                flags += ["--tlog-upload=false"]
        if sigstore.trusted_root is not None:
            flags += ["--trusted-root", str(sigstore.trusted_root)]
        flags += [f"--new-bundle-format={'true' if new_bundle_format else 'false'}"]
        return flags
    flags += _service_urls(sigstore, keyless=keyless, tlog=tlog)
    if not tlog:
        flags += ["--tlog-upload=false"]
    return flags


def _service_urls(sigstore: SigstoreInstance, *, keyless: bool, tlog: bool) -> list[str]:
    """The URLs of a private instance (the public one is every cosign's default)."""
    if not sigstore.private:
        return []
    urls: list[str] = []
    if keyless:
        urls += ["--fulcio-url", sigstore.fulcio]
    if tlog:
        urls += ["--rekor-url", sigstore.rekor]
    if sigstore.tsa:
        urls += ["--timestamp-server-url", sigstore.tsa]
    return urls


def verify_flags(
    major: int,
    sigstore: SigstoreInstance,
    *,
    certificate: bool,
    chain: Path | None,
    tlog: bool,
    new_bundle_format: bool,
    chain_root: Path | None = None,
) -> list[str]:
    """Trust, log and SCT checks for `cosign verify` of a certificate (`certificate`) or a key.

    A chain of your own goes to cosign 2 (and to cosign 3 on the public instance) as
    `--certificate-chain`; cosign 3 with a private instance gets it inside `chain_root`."""
    flags: list[str] = []
    if major >= 3 and certificate and chain_root is not None:
        flags += ["--trusted-root", str(chain_root)]
    else:
        if certificate and chain is not None:
            flags += ["--certificate-chain", str(chain)]
        if sigstore.trusted_root is not None and major >= 3:
            flags += ["--trusted-root", str(sigstore.trusted_root)]
    if sigstore.private and major < 3 and tlog:
        flags += ["--rekor-url", sigstore.rekor]
    if not tlog:
        flags += ["--insecure-ignore-tlog"]
    if certificate and ignores_sct(sigstore, chain=chain):
        flags += ["--insecure-ignore-sct"]
    if major >= 3:
        flags += [f"--new-bundle-format={'true' if new_bundle_format else 'false'}"]
    return flags


def ignores_sct(sigstore: SigstoreInstance, *, chain: Path | None) -> bool:
    """True when a certificate's SCT can't or mustn't be checked: a CA of your own (a chain, or a
    trusted root without a CT log) has no log to have embedded one, or the user said so."""
    return chain is not None or not sigstore.ct_log or sigstore.unsafe_ignore_sct
