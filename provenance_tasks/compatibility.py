"""Which verifiers can read what a run publishes: the one place that predicts it.

The plan refuses a configuration its own cosign can't read (exit 2), the report says per image
which verifier families can read it, the interop matrix (tests/integration/test_interop.py)
expects exactly these answers from the real verifiers, and the README's compatibility table is
rendered from here (a test keeps it so). Each "no" carries why, in a verifier user's words.

What each verifier reads was measured on this project's test bed (distribution 2.8, which has no
referrers API, like GHCR and Docker Hub), with Debian's cosign 2.5.0 and 3.1.1, sid's skopeo and
oras; the ones that can't run here are facts from their projects (../shared/reference).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The families, each as a user calls it (the interop matrix's columns, in order).
VERIFIERS: dict[str, str] = {
    "cosign2": "cosign 2.5 `verify` (the tutorial's: `-a tag=T`, a key or identity and issuer)",
    "cosign3": "cosign 3.1 `verify`, the same command line",
    "cosign2-attestation": "cosign 2.5 `verify-attestation --type slsaprovenance1`",
    "cosign3-attestation": "cosign 3.1 `verify-attestation --type slsaprovenance1`",
    "containers-image": "containers/image `sigstoreSigned` (podman, skopeo, CRI-O): a key, "
    "`matchRepository`, each platform",
    "oras": "`oras discover --artifact-type application/vnd.dev.sigstore.bundle.v0.3+json`",
    "sigstore-bundle": "sigstore-js's CLI (`@sigstore/cli` 0.8) `verify` of each bundle of the "
    "image, trust from a TUF repository holding the trusted root",
    "provenance-tasks": "our `verify` and `verify-attestation`",
}

#: Verifiers that can't run here, from their projects' code and issues (not tested).
NOT_RUN_HERE: dict[str, str] = {
    "sigstore policy-controller": "classic (its default `signatureFormat: legacy`); bundles "
    "opt-in per authority, keyless only",
    "Kyverno `verifyImages`": "classic with `type: Cosign` (the default); bundles only with "
    "`type: SigstoreBundle`, and not on a registry without the referrers API (kyverno#16664)",
    "Harbor": "classic; a bundle-only image shows as unsigned (goharbor/harbor#22401)",
    "Ratify": "classic only",
    "slsa-verifier": "the classic `.att` only",
    "`gh attestation verify`": "bundles (`--bundle-from-oci`), GitHub signers only",
}


@dataclass(frozen=True)
class Publication:
    """What a run publishes, as far as a verifier can tell."""

    mode: str  # keyless, key, certificate
    bundle_format: str  # classic, new, both
    attest: bool
    second_key: bool = False
    tlog: bool = True

    @property
    def classic(self) -> bool:
        return self.bundle_format in ("classic", "both")

    @property
    def bundles(self) -> bool:
        return self.bundle_format in ("new", "both")


@dataclass(frozen=True)
class Reading:
    """Whether a verifier reads a publication; `why` says why not (or what it reads)."""

    reads: bool
    why: str = ""

    def __str__(self) -> str:
        return "yes" + (f" ({self.why})" if self.why else "") if self.reads else f"no: {self.why}"


_NO_BUNDLE_READER_2 = "cosign 2 finds no bundle on a registry without the referrers API"
_SIG_ONLY = "it reads the classic `.sig` only"


def reading(publication: Publication, verifier: str) -> Reading | None:
    """How `verifier` fares with `publication`; None when it has nothing to look at there (an
    attestation verifier without attestations, a referrers tool without bundles)."""
    p = publication
    if verifier in ("cosign2-attestation", "cosign3-attestation") and not p.attest:
        return None
    if verifier in ("oras", "sigstore-bundle") and not p.bundles:
        return None
    if verifier == "cosign2":
        return Reading(True) if p.classic else Reading(False, _NO_BUNDLE_READER_2)
    if verifier == "cosign2-attestation":
        return Reading(True) if p.classic else Reading(False, _NO_BUNDLE_READER_2)
    if verifier == "containers-image":
        if not p.classic:
            return Reading(False, _SIG_ONLY)
        if p.mode == "keyless" and not p.second_key:
            return Reading(
                False,
                "keyless policies accept e-mail SANs only, and CI certificates "
                "name a URI: add provenance.second_key",
            )
        if p.mode == "certificate":
            return Reading(True, "`keyPath`: the certificate's public key")
        return Reading(True, "the second key's signature" if p.second_key else "")
    if verifier == "sigstore-bundle" and p.mode == "key":
        return Reading(False, "@sigstore/cli takes no public key: it verifies Sigstore identities")
    if verifier == "sigstore-bundle" and p.mode == "certificate":
        return Reading(
            False,
            "it trusts the Fulcio CAs of its TUF trusted root, which a CA of your own is not in",
        )
    return Reading(True)


def readers(publication: Publication) -> dict[str, str]:
    """Each verifier family that has something to read, and its answer (for the report)."""
    found = {name: reading(publication, name) for name in VERIFIERS}
    return {name: str(answer) for name, answer in found.items() if answer is not None}


def refused_by_own_cosign(publication: Publication, major: int) -> Reading | None:
    """The run's own cosign can't read what the run would publish: bad input, said up front."""
    if major >= 3:
        return None
    answer = reading(publication, "cosign2")
    return answer if answer is not None and not answer.reads else None
