"""The flags that point each cosign major at a Sigstore instance, for signing and for verifying.

What each major accepts was found by running it against a Sigstore of our own
(tests/testbed/sigstore) and is pinned by tests/unit/adapters/test_cosign.py:

- cosign 3 writes the new bundle by a signing config: the public one from TUF, the user's
  `--signing-config FILE`, or one written for the run (a private instance given by URLs, or no
  transparency log: `adapters/cosign_attest.signing_config_for`). Its trust comes from
  `--trusted-root`. Those are the flags cosign 4 keeps.
- cosign 3 writes the classic format (`.sig`, `.att`) only through flags it deprecates: a signing
  config together with the classic format is refused ("must provide --new-bundle-format or
  --bundle ... with --signing-config"), so classic signs by `--use-signing-config=false` and
  service URLs. `KEPT_DEPRECATED` lists each such flag, cosign's words and why it stays; a unit
  test asks the installed cosign 3 about every flag the argv builders emit.
- cosign 2 signs by `--fulcio-url`/`--rekor-url`/`--timestamp-server-url` and takes its trust from
  the `SIGSTORE_*` variables (see `provenance_tasks.sigstore.cosign2_trust_files`); its `sign` has
  no new-bundle format at all. Its argv is its own and is left as it was.

Only `--no-tlog` brings `--insecure-ignore-tlog`; `--insecure-ignore-sct` comes only where the
trust has no CT log to check an SCT against, or with the named unsafe setting.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from provenance_tasks.sigstore import SigstoreInstance

SIGNING_CONFIG_TYPE = "application/vnd.dev.sigstore.signingconfig.v0.2+json"


@dataclass(frozen=True)
class KeptFlag:
    """A flag cosign 3 deprecates that a format we write still needs."""

    flag: str
    cosign_says: str  # cosign 3.1's deprecation message, as it prints it
    why: str


# Each goes when cosign drops the classic format (cosign 4, sigstore/cosign#4354).
KEPT_DEPRECATED: tuple[KeptFlag, ...] = (
    KeptFlag(
        "--new-bundle-format",
        "this will be the only supported format in future versions",
        "`=false` is cosign 3's only switch to the classic format (.sig, .att) on sign, attest, "
        "verify and verify-attestation; the new bundle is its default and gets no flag",
    ),
    KeptFlag(
        "--fulcio-url",
        "please use a signing config to specify a fulcio url",
        "classic keyless signing: cosign 3 refuses a signing config with the classic format",
    ),
    KeptFlag(
        "--rekor-url",
        "please use a signing config to specify a rekor url",
        "classic signing with a transparency log, for the same reason",
    ),
    KeptFlag(
        "--timestamp-server-url",
        "please use a signing config to specify a timestamp server url",
        "classic signing with a timestamp authority, for the same reason",
    ),
    KeptFlag(
        "--tlog-upload",
        "prefer using a --signing-config file with no transparency log services",
        "classic signing without a transparency log (--no-tlog), for the same reason",
    ),
    KeptFlag(
        "--certificate-chain",
        "please use --trusted-root to provide the certificate chain",
        "verify only, and only a certificate of your own CA against the public instance's log: "
        "a trusted root holding the chain would also have to hold the public logs' keys, which "
        "only the public TUF repository has (with a private instance, or no log, the chain goes "
        "in a trusted root: sigstore.chain_trusted_root)",
    ),
)


def sign_flags(
    major: int,
    sigstore: SigstoreInstance,
    *,
    keyless: bool,
    tlog: bool,
    new_bundle_format: bool,
    identity_token: Path | None = None,
    signing_config: Path | None = None,
    trusted_root: Path | None = None,
) -> list[str]:
    """Services, trust and format for `cosign sign` and `cosign attest`.

    `signing_config`: what cosign 3 writes a new bundle by (`signing_config_for`); None only for
    the public instance with a log, which cosign reads from TUF. `trusted_root`: cosign 3's when
    it isn't the instance's (a certificate's own chain)."""
    flags: list[str] = []
    if identity_token is not None:
        # A path, never the token: argv is visible to every process on the machine.
        flags += ["--identity-token", str(identity_token)]
    if major < 3:
        flags += _service_urls(sigstore, keyless=keyless, tlog=tlog)
        if not tlog:
            flags += ["--tlog-upload=false"]
        return flags
    if new_bundle_format:
        if signing_config is None and (sigstore.private or not tlog):
            raise ValueError("cosign 3 writes a new bundle by a signing config: none was given")
        if signing_config is not None:
            flags += ["--signing-config", str(signing_config)]
    else:
        flags += ["--use-signing-config=false"]
        flags += _service_urls(sigstore, keyless=keyless, tlog=tlog)
        if not tlog:
            flags += ["--tlog-upload=false"]
    root = trusted_root or sigstore.trusted_root
    if root is not None:
        flags += ["--trusted-root", str(root)]
    if not new_bundle_format:
        flags += ["--new-bundle-format=false"]
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
    """Trust, log and SCT checks for `cosign verify` (and verify-attestation) of a certificate
    (`certificate`) or a key, reading the format asked for.

    A chain of your own goes to cosign 2 as `--certificate-chain`; cosign 3 gets it inside
    `chain_root` (a trusted root holding it), or, on the public instance with a log, as the
    kept `--certificate-chain`."""
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
    if major >= 3 and not new_bundle_format:
        # The new bundle is cosign 3's default; a classic read must say so, or a bundle among
        # the referrers (an attestation's) is taken for the signature (sigstore/cosign#4573).
        flags += ["--new-bundle-format=false"]
    return flags


def ignores_sct(sigstore: SigstoreInstance, *, chain: Path | None) -> bool:
    """True when a certificate's SCT can't or mustn't be checked: a CA of your own (a chain, or a
    trusted root without a CT log) has no log to have embedded one, or the user said so."""
    return chain is not None or not sigstore.ct_log or sigstore.unsafe_ignore_sct


def signing_config_for(
    sigstore: SigstoreInstance, *, keyless: bool, tlog: bool, folder: Path
) -> Path | None:
    """The signing config cosign 3 writes a new bundle by: the user's (with a log), none for the
    public instance with a log, else one written here naming exactly the services to use (the
    same file for the same services: the images of a set share it)."""
    if tlog and sigstore.signing_config is not None:
        return _rekor_v1_only(sigstore.signing_config, folder)
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
    path = (
        folder
        / f"signing-config-{'keyless' if keyless else 'key'}-{'tlog' if tlog else 'no-tlog'}.json"
    )
    if not path.exists():  # written whole, then renamed: a reader never sees half of it
        partial = path.with_suffix(f".{threading.get_ident()}.tmp")
        partial.write_text(json.dumps(config, indent=2))
        partial.replace(path)
    return path


def _rekor_v1_only(config: Path, folder: Path) -> Path:
    """The user's signing config, less any Rekor v2 log it lists beside a v1 one: cosign 3 would
    pick v2, which this tool doesn't support yet (a config of v2 alone is refused up front)."""
    data = json.loads(config.read_text())
    logs = data.get("rekorTlogUrls") or []
    kept = [entry for entry in logs if entry.get("majorApiVersion", 1) == 1]
    if kept == logs:
        return config
    path = folder / "signing-config-rekor-v1.json"
    if not path.exists():  # written whole, then renamed, as above
        partial = path.with_suffix(f".{threading.get_ident()}.tmp")
        partial.write_text(json.dumps({**data, "rekorTlogUrls": kept}, indent=2))
        partial.replace(path)
    return path
