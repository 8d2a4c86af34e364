"""Sign and attest side by side, then verify and verify-attestation, with the real tools
(steps/beside.py), and the fail-closed order that stays: nothing is published unless both sides
of each pair succeeded, each side retries on its own, and writes to one digest's referrers
never overlap (bundle_format both: in series).

That they ran side by side is read from the order of the requests a proxy saw, never from a
clock: in series, the second side's first request comes after the first side's last answer.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner, make_context, make_key_pair
from tests.integration.test_publish import report_of_run, user_tags
from tests.integration.test_sigstore_faults import keyless, through
from tests.testbed.faultproxy import FaultProxy, Faults
from tests.testbed.faults import Event
from tests.testbed.netprofile import Link, Shaper

pytestmark = pytest.mark.integration

CERTIFICATE = r"^POST /api/v./signingCert$"
LOG_ENTRY = r"^POST /api/v1/log/entries$"
SIGNATURES = r"/manifests/sha256-[0-9a-f]+\.sig$"
ATTESTATIONS = r"/manifests/sha256-[0-9a-f]+\.att$"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"


def positions(log: list[Event], pattern: str) -> list[int]:
    """Where the requests matching `pattern` were answered, in the order of the answers."""
    return [i for i, e in enumerate(log) if re.search(pattern, f"{e.method} {e.path}")]


@pytest.fixture
def registry_proxy(runner: Runner) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=runner.testbed.plain_registry) as started:
        yield started


def key_run(
    runner: Runner, proxy: FaultProxy, cosign: str, folder: Path, **env: str
) -> tuple[Any, str]:
    """build-sign-verify of a fresh image, pushed and signed by key through `proxy`;
    (the run, the repository around the proxy)."""
    key, _ = make_key_pair(cosign, folder / "keys" / "cosign")
    image = f"{proxy.address}/beside/app-{uuid.uuid4().hex[:8]}"
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(make_context(folder / "ctx")),
        "--image",
        image,
        "--tag",
        "v1",
        "--key",
        str(key),
        env={"INVOKE_PROVENANCE_COSIGN": cosign, **env},
    )
    return done, image.replace(proxy.address, proxy.upstream, 1)


def test_sign_and_attest_ask_for_their_certificates_before_either_log_entry_is_written(
    runner: Runner, context: Path, cosign: str
) -> None:
    """Each Rekor write takes 2 s: in series, attest's certificate is asked for only once
    sign's log entry was answered; side by side, both certificates come first."""
    shaper = Shaper(Link(rekor_write=2.0), sigstore=True)
    upstream = runner.sigstore.url.removeprefix("http://")
    with FaultProxy(upstream=upstream, shaper=shaper) as proxy:
        env = keyless(runner, cosign, **through(proxy))
        done = runner.run("build-sign-verify", "--context", str(context), env=env)
        log = proxy.stats().log
    assert done.returncode == 0, done.stderr
    certificates, entries = positions(log, CERTIFICATE), positions(log, LOG_ENTRY)
    assert len(certificates) == len(entries) == 2  # and no more: sign's and attest's
    assert max(certificates) < min(entries), [f"{e.method} {e.path}" for e in log]
    assert "in series" not in done.stderr
    steps = [s["name"] for s in report_of_run(runner)["steps"]]
    assert steps.index("publish") > steps.index("verify-attestation") > steps.index("attest")


def test_one_sigstore_slot_puts_sign_and_attest_one_after_the_other_and_says_so(
    runner: Runner, context: Path, cosign: str
) -> None:
    """sigstore_jobs: 1 (a private Sigstore that takes one request at a time): the second
    side asks for its certificate only after the first side's log entry was answered."""
    shaper = Shaper(Link(rekor_write=1.0), sigstore=True)
    upstream = runner.sigstore.url.removeprefix("http://")
    with FaultProxy(upstream=upstream, shaper=shaper) as proxy:
        env = keyless(runner, cosign, **through(proxy), INVOKE_PROVENANCE_SIGSTORE_JOBS="1")
        done = runner.run("build-sign-verify", "--context", str(context), env=env)
        log = proxy.stats().log
    assert done.returncode == 0, done.stderr
    certificates, entries = positions(log, CERTIFICATE), positions(log, LOG_ENTRY)
    assert len(certificates) == len(entries) == 2
    assert certificates[0] < entries[0] < certificates[1] < entries[1]
    assert "for a Sigstore slot (sigstore_jobs 1" in done.stderr


def test_verify_and_verify_attestation_read_side_by_side(
    runner: Runner, registry_proxy: FaultProxy, cosign: str, tmp_path: Path
) -> None:
    """Reading the signatures (`.sig`) takes 2 s: in series, verify-attestation reads the
    attestations (`.att`) only after verify's last read was answered; side by side, before."""
    registry_proxy.set_faults(
        Faults(rate=1.0, kinds={"slow": 1}, slow_seconds=2.0, only=f"^GET .*{SIGNATURES}")
    )
    done, _ = key_run(runner, registry_proxy, cosign, tmp_path)
    assert done.returncode == 0, done.stderr
    log = registry_proxy.stats().log
    written = positions(log, f"^PUT .*({SIGNATURES}|{ATTESTATIONS})")
    published = positions(log, r"^PUT .*/manifests/v1$")
    assert written and published
    # What verify and verify-attestation read: after the last signature or attestation was
    # written, before the tag was published.
    verifying = log[max(written) + 1 : min(published)]
    read_signatures = positions(verifying, f"^GET .*{SIGNATURES}")
    read_attestations = positions(verifying, f"^GET .*{ATTESTATIONS}")
    assert read_signatures and read_attestations, [f"{e.method} {e.path}" for e in verifying]
    assert min(read_attestations) < max(read_signatures)


def test_an_attestation_refused_while_the_signature_lands_publishes_nothing(
    runner: Runner, registry: Registry, registry_proxy: FaultProxy, cosign: str, tmp_path: Path
) -> None:
    """The registry refuses the attestation's manifest (403): the signature beside it is made,
    and the run ends as a registry failure (exit 4) with no tag on the image."""
    registry_proxy.set_faults(Faults(rate=1.0, kinds={"403": 1}, only=f"^PUT .*{ATTESTATIONS}"))
    done, direct = key_run(runner, registry_proxy, cosign, tmp_path)
    assert done.returncode == 4, done.stderr
    report = report_of_run(runner)
    assert report["failure"]["step"] == "attest", report["failure"]
    statuses = {s["name"]: s["status"] for s in report["steps"]}
    assert statuses["sign"] == "ok" and statuses["attest"] == "failed"
    assert "verify" not in statuses and "publish" not in statuses  # never started
    assert report["outputs"]["IMAGE_PUBLISHED"] == ""
    assert user_tags(registry, direct) == []  # nor the staging tag
    tags = registry.tags(direct)
    assert [t for t in tags if t.endswith(".sig")] and not [t for t in tags if t.endswith(".att")]


def test_rekor_refusing_writes_for_a_while_is_retried_by_each_side(
    runner: Runner, context: Path, cosign: str
) -> None:
    """The first eight log entries are answered 503: more than one cosign call's own retries
    take, so a side fails an attempt, retries on its own budget, and the run verifies."""
    upstream = runner.sigstore.url.removeprefix("http://")
    with FaultProxy(upstream=upstream) as proxy:
        proxy.set_faults(Faults(rate=1.0, kinds={"503": 1}, only=LOG_ENTRY, limit=8))
        env = keyless(runner, cosign, **through(proxy))
        done = runner.run("build-sign-verify", "--context", str(context), env=env)
        stats = proxy.stats()
    assert done.returncode == 0, done.stderr
    assert stats.faults.get("503") == 8
    written = [e for e in stats.log if re.search(LOG_ENTRY, f"{e.method} {e.path}")]
    assert [e.status for e in written].count(201) == 2  # sign's entry and attest's
    assert "attempt 1 failed" in done.stderr and "VERIFIED" in done.stderr


def test_both_formats_list_every_referrer_typed_signing_and_attesting_in_series(
    runner: Runner, registry: Registry, tmp_path: Path
) -> None:
    """bundle_format both on cosign 3: sign and attest each list a bundle in the one fallback
    index of the digest, so they write one after the other, and the index lists both, typed."""
    cosign = str(COSIGNS["cosign3"])
    if not Path(cosign).exists():
        pytest.skip("cosign3 is not installed")
    key, _ = make_key_pair(cosign, tmp_path / "keys" / "cosign3")
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, "")
    env["INVOKE_PROVENANCE_BUNDLE_FORMAT"] = "both"
    context = make_context(tmp_path / "ctx")
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    repository = env["CI_REGISTRY_IMAGE"]
    digest = registry.digest(f"{repository}:{env['CI_COMMIT_SHORT_SHA']}")
    assert "sign and attest in series: both list bundles in the fallback index" in done.stderr
    assert f"{repository}:sha256-{digest.removeprefix('sha256:')}" in done.stderr
    index = json.loads(registry.crane("manifest", f"{repository}:sha256-{digest[7:]}"))
    assert [d["artifactType"] for d in index["manifests"]] == [BUNDLE, BUNDLE], index
    types = {d["annotations"]["dev.sigstore.bundle.predicateType"] for d in index["manifests"]}
    assert types == {"https://sigstore.dev/cosign/sign/v1", "https://slsa.dev/provenance/v1"}
    tags = registry.tags(repository)  # and the classic format's, for readers of that one
    assert f"sha256-{digest[7:]}.sig" in tags and f"sha256-{digest[7:]}.att" in tags
