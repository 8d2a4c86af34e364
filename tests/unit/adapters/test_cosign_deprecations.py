"""Ready for cosign 4 as far as the formats allow: every flag our argv builders hand cosign 3 is
put to the installed cosign 3, which names a deprecated flag when it is passed (cobra hides them
from a plain --help). A deprecated flag must be on `KEPT_DEPRECATED`, with cosign's own words,
and no line that writes or reads a new bundle may carry one.

This runs the real cosign 3 binary (only `--help`: nothing is signed, nothing leaves the machine).
"""

from __future__ import annotations

import itertools
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance_tasks.adapters.cosign import Cosign
from provenance_tasks.adapters.cosign_attest import attest_argv, verify_attestation_argv
from provenance_tasks.adapters.cosign_flags import KEPT_DEPRECATED
from provenance_tasks.models import (
    CertificateSigning,
    IdentityPolicy,
    KeylessSigning,
    KeyPolicy,
    KeySigning,
    SigningMaterial,
    VerificationPolicy,
)
from provenance_tasks.redaction import Redactor
from provenance_tasks.sigstore import SigstoreInstance

COSIGN3 = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools")) / "bin" / "cosign3"
REF = "registry.example.com/group/app@sha256:" + "a" * 64
ROOT = Path("/trust/trusted_root.json")
CONFIG = Path("/run/private/signing-config.json")
INSTANCES = {
    "urls": SigstoreInstance(fulcio_url="http://f", rekor_url="http://r", trusted_root=ROOT),
    "urls+tsa": SigstoreInstance(
        fulcio_url="http://f", rekor_url="http://r", tsa_url="http://t", trusted_root=ROOT
    ),
    "config": SigstoreInstance(
        signing_config=Path("/trust/signing_config.json"),
        trusted_root=ROOT,
        configured=("http://f", "http://r", None),
    ),
    "public": SigstoreInstance(),
}
MATERIALS: dict[str, SigningMaterial] = {
    "key": KeySigning("cosign.key"),
    "keyless": KeylessSigning(),
    "certificate": CertificateSigning("k.key", Path("/pki/leaf.pem"), Path("/pki/chain.pem")),
}
POLICIES: dict[str, VerificationPolicy] = {
    "key": KeyPolicy("cosign.pub"),
    "identity": IdentityPolicy("https://id", "https://iss"),
    "chain": IdentityPolicy("https://id", "https://iss", chain=Path("/pki/chain.pem")),
    "chain-root": IdentityPolicy(
        "https://id",
        "https://iss",
        chain=Path("/pki/chain.pem"),
        chain_root=Path("/run/private/chain_root.json"),
    ),
}
_DEPRECATED = re.compile(r"Flag (--[\w-]+) has been deprecated, (.*)")


def lines() -> Iterator[tuple[str, bool, list[str]]]:
    """(what, new bundle, argv) for every line the builders make for cosign 3."""
    for (name, sigstore), tlog, new in itertools.product(
        INSTANCES.items(), (True, False), (False, True)
    ):
        cosign = Cosign("cosign", 3, Redactor(), sigstore=sigstore, timeout=60)
        config = CONFIG if new and (sigstore.private or not tlog) else None
        for kind, material in MATERIALS.items():
            if kind == "keyless" and not tlog:
                continue  # not a configuration: keyless always needs the log
            token = Path("/run/private/id-token") if kind == "keyless" else None
            what = f"{name} tlog={tlog} new={new} {kind}"
            yield (
                f"sign {what}",
                new,
                cosign.sign_argv(
                    REF,
                    material,
                    {"k": "v"},
                    tlog=tlog,
                    new_bundle_format=new,
                    identity_token=token,
                    signing_config=config,
                ),
            )
            yield (
                f"attest {what}",
                new,
                attest_argv(
                    cosign,
                    REF,
                    material,
                    "slsaprovenance1",
                    Path("p.json"),
                    tlog=tlog,
                    identity_token=token,
                    signing_config=config,
                    new_bundle_format=new,
                ),
            )
        for kind, policy in POLICIES.items():
            # preflight puts a chain in a trusted root but on the public instance's log, classic
            if kind == "chain" and (sigstore.private or not tlog or new):
                continue
            what = f"{name} tlog={tlog} new={new} {kind}"
            yield (
                f"verify {what}",
                new,
                cosign.verify_argv(REF, policy, {"k": "v"}, tlog=tlog, new_bundle_format=new),
            )
            yield (
                f"verify-attestation {what}",
                new,
                verify_attestation_argv(
                    cosign, REF, policy, "slsaprovenance1", tlog=tlog, new_bundle_format=new
                ),
            )


_asked: dict[tuple[str, ...], dict[str, str]] = {}


def deprecated_in(argv: list[str]) -> dict[str, str]:
    """The flags of `argv` the installed cosign 3 calls deprecated, with its words (asked once
    per set of flags: the values don't change what cobra says)."""
    subcommand, flags = argv[1], argv[2:-1]  # the image reference last: --help needs none
    names = (subcommand, *sorted(f.split("=")[0] for f in flags if f.startswith("-")))
    if names not in _asked:
        _asked[names] = _ask(subcommand, flags, argv)
    return _asked[names]


def _ask(subcommand: str, flags: list[str], argv: list[str]) -> dict[str, str]:
    done = subprocess.run(
        [str(COSIGN3), subcommand, *flags, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "TUF_ROOT": "/nonexistent"},
    )
    text = done.stdout + done.stderr
    assert "unknown flag" not in text, f"cosign 3 refuses a flag of {argv}: {text[-300:]}"
    return {m.group(1): m.group(2) for m in _DEPRECATED.finditer(text)}


@pytest.fixture(scope="module")
def found() -> dict[str, tuple[bool, dict[str, str]]]:
    if not COSIGN3.exists():
        if os.environ.get("CI") == "true":
            pytest.fail(f"{COSIGN3} is not installed (CI=true: run ci/install-tools)")
        pytest.skip(f"{COSIGN3} is not installed: run ci/install-tools")
    return {what: (new, deprecated_in(argv)) for what, new, argv in lines()}


def test_every_deprecated_flag_we_pass_is_on_the_kept_list_with_cosigns_words(
    found: dict[str, tuple[bool, dict[str, str]]],
) -> None:
    kept = {k.flag: k.cosign_says for k in KEPT_DEPRECATED}
    for what, (_, deprecated) in found.items():
        for flag, words in deprecated.items():
            assert flag in kept, f"{what}: cosign 3 deprecates {flag} ({words}), not on the list"
            assert kept[flag] in words, f"{flag}: cosign now says {words!r}"


def test_no_line_that_writes_or_reads_a_new_bundle_passes_a_deprecated_flag(
    found: dict[str, tuple[bool, dict[str, str]]],
) -> None:
    for what, (new, deprecated) in found.items():
        if new:
            assert not deprecated, f"{what}: {deprecated}"


def test_the_kept_list_holds_no_flag_we_no_longer_pass(
    found: dict[str, tuple[bool, dict[str, str]]],
) -> None:
    passed = {flag for _, deprecated in found.values() for flag in deprecated}
    assert {k.flag for k in KEPT_DEPRECATED} == passed
