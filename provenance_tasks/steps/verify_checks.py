"""What verify compares, and how: the expectations per tag, what a verified signature says,
and our own checks of it (digest, repository, signer, every annotation). No tool runs here:
steps/verify.py runs cosign and hands its JSON to these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from provenance_tasks.models import Target, VerificationPolicy

FULCIO_OID = "1.3.6.1.4.1.57264."
NEW_BUNDLE_TYPE = (
    "https://sigstore.dev/cosign/sign/v1"  # classic: "cosign container image signature"
)


@dataclass(frozen=True)
class Expectation:
    tag: str | None
    annotations: dict[str, str]


@dataclass
class FoundSignature:
    format: str  # "classic" or "new"
    digest: str | None
    reference: str | None
    annotations: dict[str, str]
    subject: str | None = None
    issuer: str | None = None


@dataclass
class VerifyReport:
    reference: str
    policy: str
    expectations: list[Expectation]
    signatures: list[FoundSignature] = field(default_factory=list)
    matches: dict[str, int] = field(default_factory=dict)  # expectation label -> signature index
    problems: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest at the registry
    second: dict[str, Any] | None = None  # provenance.second_key's co-signature, verified
    # One row per platform manifest of an index: platform, digest, signed, verified, problem.
    platforms: list[dict[str, Any]] = field(default_factory=list)
    consumer: dict[str, Any] | None = None  # the run's cosign as a consumer runs it (consumer.py)
    readers: dict[str, str] = field(default_factory=dict)  # verifier family -> can it read this

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "policy": self.policy,
            "verified": self.ok,
            "problems": self.problems,
            "tags": self.tags,
            "platforms": self.platforms,
            "second": self.second,
            "consumer": self.consumer,
            "readers": self.readers,
            "expected": [{"tag": e.tag, "annotations": e.annotations} for e in self.expectations],
            "signatures": [s.__dict__ for s in self.signatures],
            "matches": self.matches,
        }


def summarize(payload: dict[str, Any]) -> FoundSignature:
    critical = payload.get("critical") or {}
    fmt = "new" if critical.get("type") == NEW_BUNDLE_TYPE else "classic"
    optional = dict(payload.get("optional") or {})
    subject = optional.pop("Subject", None)
    issuer = optional.pop("Issuer", None)
    # cosign adds these from the certificate and the log; they are not annotations.
    added = [k for k in optional if k in ("Bundle", "RFC3161Timestamp") or k.startswith(FULCIO_OID)]
    for key in added:
        optional.pop(key)
    return FoundSignature(
        format=fmt,
        digest=(critical.get("image") or {}).get("docker-manifest-digest"),
        reference=(critical.get("identity") or {}).get("docker-reference"),
        annotations={str(k): str(v) for k, v in optional.items()},
        subject=subject if isinstance(subject, str) else None,
        issuer=issuer if isinstance(issuer, str) else None,
    )


def expectations(target: Target) -> list[Expectation]:
    if not target.tags:
        return [Expectation(None, target.annotations_for(None))]
    return [Expectation(tag, target.annotations_for(tag)) for tag in target.tags]


def check(report: VerifyReport, repository: str, digest: str, policy: VerificationPolicy) -> None:
    """Our own checks over what cosign verified: digest, repository, signer, annotations."""
    usable: list[int] = []
    for index, sig in enumerate(report.signatures):
        if sig.digest != digest:
            report.problems.append(f"signature {index + 1} is for {sig.digest}, not {digest}")
            continue
        if sig.reference and sig.reference.split("@", 1)[0] != repository:
            continue  # signed for another repository: listed, not used
        if not policy.admits(sig.subject):
            continue  # not this signer's: listed, not used
        usable.append(index)
    for expectation in report.expectations:
        label = expectation.tag or "*"
        for index in usable:
            found = report.signatures[index].annotations
            if all(found.get(k) == v for k, v in expectation.annotations.items()):
                report.matches[label] = index
                break
        else:
            report.problems.append(_mismatch(report, expectation, usable))


def _mismatch(report: VerifyReport, expectation: Expectation, usable: list[int]) -> str:
    what = f"tag {expectation.tag}" if expectation.tag else "the image"
    if not usable:
        return f"no verified signature of {what} is for this repository and digest"
    # The closest signature tells the user which annotation is missing or altered.
    best = max(
        usable,
        key=lambda i: sum(
            report.signatures[i].annotations.get(k) == v for k, v in expectation.annotations.items()
        ),
    )
    found = report.signatures[best].annotations
    wrong = [
        f"{k}: expected {v!r}, found {found[k]!r}"
        if k in found
        else f"{k}: missing (expected {v!r})"
        for k, v in expectation.annotations.items()
        if found.get(k) != v
    ]
    return f"no signature carries every expected annotation for {what}; closest: " + "; ".join(
        wrong
    )
