"""The verdict of verify, on parsed payloads: our own checks over what cosign verified."""

from __future__ import annotations

import pytest

from provenance_tasks.errors import CommandFailed, ToolError
from provenance_tasks.models import IdentityPolicy, KeyPolicy
from provenance_tasks.steps.verify import _found_signer, refused_call, refused_the_call
from provenance_tasks.steps.verify_checks import (
    Expectation,
    FoundSignature,
    VerifyReport,
    check,
    summarize,
)

REPO = "registry.example.com/group/app"
DIGEST = "sha256:" + "a" * 64
ID = "https://gitlab.example.com/group/app//.gitlab-ci.yml@refs/heads/main"


def signature(annotations: dict[str, str], **changes: object) -> FoundSignature:
    found = FoundSignature("classic", DIGEST, f"{REPO}@{DIGEST}", annotations, ID, "https://gl")
    for key, value in changes.items():
        setattr(found, key, value)
    return found


def report(*signatures: FoundSignature, expected: dict[str, str]) -> VerifyReport:
    result = VerifyReport(f"{REPO}@{DIGEST}", "key", [Expectation("v1", expected)])
    result.signatures += signatures
    return result


def test_a_signature_with_every_expected_annotation_matches() -> None:
    verdict = report(
        signature({"tag": "v1", "a": "1", "extra": "x"}), expected={"tag": "v1", "a": "1"}
    )
    check(verdict, REPO, DIGEST, KeyPolicy("k.pub"))
    assert verdict.ok and verdict.matches == {"v1": 0}


def test_an_altered_annotation_is_reported_expected_against_found() -> None:
    verdict = report(signature({"tag": "v1", "a": "2"}), expected={"tag": "v1", "a": "1"})
    check(verdict, REPO, DIGEST, KeyPolicy("k.pub"))
    assert not verdict.ok
    assert "a: expected '1', found '2'" in verdict.problems[0]


def test_a_signature_for_another_digest_repository_or_signer_is_not_used() -> None:
    expected = {"tag": "v1"}
    for other in (
        signature(expected, digest="sha256:" + "b" * 64),
        signature(expected, reference=f"registry.example.com/other@{DIGEST}"),
        signature(expected, subject="https://evil.example/x"),
    ):
        verdict = report(other, expected=expected)
        check(verdict, REPO, DIGEST, IdentityPolicy(ID, "https://gl"))
        assert not verdict.ok, other


def test_payload_summaries_drop_what_cosign_adds_and_tell_the_format_apart() -> None:
    payload = {
        "critical": {
            "type": "https://sigstore.dev/cosign/sign/v1",
            "image": {"docker-manifest-digest": DIGEST},
        },
        "optional": {"tag": "v1", "Bundle": {}, "Subject": ID, "1.3.6.1.4.1.57264.1.1": "x"},
    }
    found = summarize(payload)
    assert (found.format, found.annotations, found.subject) == ("new", {"tag": "v1"}, ID)


def test_the_signer_cosign_found_is_read_from_its_error() -> None:
    error = (
        "no matching signatures: none of the expected identities matched what was in the "
        f"certificate, got subjects [{ID}] with issuer https://gitlab.example.com"
    )
    assert _found_signer(error) == f"identity {ID} issued by https://gitlab.example.com"
    assert _found_signer("no signatures found") is None


# --- a cosign that refused the call is a tool failure, not a verdict ---------------------------

REF = f"{REPO}@{DIGEST}"


@pytest.mark.parametrize(
    "stderr",
    [
        "Error: unknown flag: --certificate-chain-x",
        "Error: verifying attestations: certificate chain must be in bundle",
        "Error: if any flags in the group [key certificate] are set none of the others can be",
        "Error: loading trusted root: open /x/trusted_root.json: no such file or directory",
    ],
)
def test_cosign_refusing_the_call_is_exit_4_in_its_own_words(stderr: str) -> None:
    assert refused_call(stderr)
    failed = CommandFailed("cosign", ["cosign", "verify", REF], 1, stderr)
    with pytest.raises(ToolError) as raised:
        refused_the_call(failed, "verify-attestation")
    assert raised.value.exit_code == 4 and stderr.splitlines()[-1] in raised.value.message


@pytest.mark.parametrize(
    "stderr",
    [
        "Error: no matching signatures: crypto/ecdsa: verification error",
        "Error: no matching attestations: none of the expected identities matched what was in the "
        "certificate, got subjects [https://x] with issuer https://gl",
        "Error: no matching signatures: missing or incorrect annotation",
        "Error: no signatures found",
        # a warning cosign went on without, then its verdict: the verdict counts
        "Could not fetch trusted_root.json from the TUF repository, continuing with individual "
        "targets: open /root/.sigstore/root: no such file or directory\n"
        "Error: no matching signatures: crypto/ecdsa: verification error\n"
        "error during command execution: no matching signatures: crypto/ecdsa: verification "
        "error",
    ],
)
def test_signatures_read_that_dont_satisfy_the_policy_stay_a_verdict(stderr: str) -> None:
    assert not refused_call(stderr)
    refused_the_call(CommandFailed("cosign", ["cosign", "verify", REF], 1, stderr), "verify")
