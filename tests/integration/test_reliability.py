"""A flaky registry, through the fault proxy: retries ride out what passes, stop at what doesn't.

Every run here is a real build-sign-verify (buildx push, cosign sign and verify, the tag audit)
against the test bed's plain registry behind a FaultProxy on loopback. The digest each run signs
is checked against the registry itself, read around the proxy.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import COSIGNS, Registry, Runner, make_context, make_key_pair
from tests.testbed.faultproxy import FaultProxy, Faults

SIGNATURE_REQUEST = r"manifests/sha256-[0-9a-f]+\.sig"  # cosign's first look at signatures


@pytest.fixture
def proxy(runner: Runner) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=runner.testbed.plain_registry) as started:
        yield started


def run_job(
    runner: Runner, proxy: FaultProxy, cosign: str, folder: Path, **env: str
) -> tuple[subprocess.CompletedProcess[str], str, list[dict[str, object]], float]:
    """build-sign-verify of a fresh image through the proxy, logs as JSON lines."""
    key, _ = make_key_pair(cosign, folder / "keys" / "cosign")
    context = make_context(folder / "ctx")
    image = f"{proxy.address}/flaky/app-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--image",
        image,
        "--tag",
        "v1",
        "--key",
        str(key),
        "--log-format",
        "json",
        env={"INVOKE_PROVENANCE_COSIGN": cosign, **env},
    )
    took = time.monotonic() - started
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    return done, image, records, took


def direct(image: str, proxy: FaultProxy) -> str:
    """The same repository, addressed at the registry itself (around the proxy)."""
    return image.replace(proxy.address, proxy.upstream, 1)


def retries(records: list[dict[str, object]]) -> list[dict[str, object]]:
    return [r for r in records if "retrying in" in str(r.get("event"))]


@pytest.mark.integration
def test_ten_runs_at_a_ten_percent_fault_rate_all_sign_and_verify_the_pushed_digest(
    runner: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    cosigns = sorted(COSIGNS)
    retried = 0
    for run in range(10):
        proxy.set_faults(Faults(rate=0.10, kinds={"503": 1, "429": 1, "drop": 1}, seed=1000 + run))
        cosign = str(COSIGNS[cosigns[run % 2]])
        done, image, records, took = run_job(runner, proxy, cosign, tmp_path / f"run{run}")
        proxy.set_faults(Faults())
        assert done.returncode == 0, f"run {run} ({cosign}):\n{done.stderr[-3000:]}"
        summary = records[-1]
        assert summary["event"] == "run.summary" and summary["verified"] is True
        # What was signed and verified is what the registry holds under the tag.
        assert summary["digest"] == registry.digest(f"{direct(image, proxy)}:v1")
        retried += len(retries(records))
        # Shown with -s: the figures behind the README's retry defaults.
        most = max((int(str(r["attempt"])) for r in retries(records)), default=0) + 1
        print(f"run {run}: {took:.1f}s, {len(retries(records))} retries, most attempts {most}")
    faults = proxy.stats().faults
    assert sum(faults.values()) > 0 and retried > 0, (faults, retried)  # the faults did bite


@pytest.mark.integration
def test_a_fifteen_second_outage_while_signing_is_waited_out(
    runner: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    proxy.outage(15, start_after=SIGNATURE_REQUEST)
    cosign = str(COSIGNS["cosign3"])
    done, image, records, took = run_job(runner, proxy, cosign, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert took >= 15  # the outage really happened inside the run
    assert proxy.stats().faults.get("outage", 0) > 0
    # Attest runs beside sign (Step 14): the outage finds both writing to the registry, and
    # nothing else; each waits it out on its own retries.
    waits = retries(records)
    steps = {r["step"] for r in waits}
    assert "sign" in steps and steps <= {"sign", "attest"}, steps
    assert records[-1]["digest"] == registry.digest(f"{direct(image, proxy)}:v1")


@pytest.mark.integration
@pytest.mark.parametrize(("kind", "check"), [("401", "user name and password"), ("403", "rights")])
def test_a_permanent_401_or_403_fails_after_one_attempt_naming_the_registry(
    runner: Runner, proxy: FaultProxy, tmp_path: Path, kind: str, check: str
) -> None:
    proxy.always(kind)
    cosign = str(COSIGNS["cosign3"])
    done, _, records, took = run_job(runner, proxy, cosign, tmp_path)
    assert done.returncode == 4, done.stderr
    assert not retries(records)
    failure = records[-1]["failure"]
    assert isinstance(failure, dict)
    assert failure["step"] == "push"  # the build pushes nothing; the push is by digest
    assert proxy.address in failure["message"] and check in failure["hint"]
    # The fail-fast contract (one attempt, no waiting), not a speed benchmark.
    assert took < 10, took


@pytest.mark.integration
def test_an_outage_longer_than_the_budget_fails_within_it_and_nothing_is_signed(
    runner: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    budget = 20
    proxy.outage(600, start_after=SIGNATURE_REQUEST)
    cosign = str(COSIGNS["cosign2"])
    done, image, records, took = run_job(
        runner, proxy, cosign, tmp_path, INVOKE_PROVENANCE_RETRY_BUDGET=str(budget)
    )
    proxy.outage(0)
    assert done.returncode == 4, done.stderr[-3000:]
    failure = records[-1]["failure"]
    assert isinstance(failure, dict) and failure["step"] == "sign"
    assert "kept failing" in failure["message"] and "retry_budget" in failure["hint"]
    sign_started = next(r for r in records if r["event"] == "step.start" and r["step"] == "sign")
    assert sign_started
    assert took < 60  # the build and the sign step's budget, never the outage's ten minutes
    # Nothing was signed, and nothing published: no tag (v1, or a signature's) names the image.
    assert registry.holds_nothing(direct(image, proxy))


@pytest.mark.integration
def test_a_sign_retried_after_its_signature_upload_failed_leaves_one_signature_that_verifies(
    runner: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path, cosign: str
) -> None:
    # The layers of the signature are uploaded, then its manifest PUT fails until cosign's own
    # retries are spent: our retry signs again over the half-written state.
    proxy.outage(6, start_after=r"PUT .*/manifests/sha256-[0-9a-f]+\.sig")
    done, image, records, _ = run_job(runner, proxy, cosign, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert any(r["step"] == "sign" for r in retries(records)), "the sign step was not retried"
    digest = registry.digest(f"{direct(image, proxy)}:v1")
    assert records[-1]["digest"] == digest and records[-1]["verified"] is True
    # Exactly one signature: the retry neither duplicated nor lost it.
    signatures = registry.crane(
        "manifest", f"{direct(image, proxy)}:{digest.replace(':', '-')}.sig"
    )
    assert len(json.loads(signatures)["layers"]) == 1


@pytest.mark.integration
@pytest.mark.parametrize("where", ["refused", "unresolvable"])
def test_a_registry_that_cannot_be_reached_fails_before_the_build_not_after_the_budget(
    runner: Runner, tmp_path: Path, where: str
) -> None:
    import socket

    with socket.socket() as unused:  # bound, never listening: connections are refused
        unused.bind(("127.0.0.1", 0))
        registry = (
            f"127.0.0.1:{unused.getsockname()[1]}"
            if where == "refused"
            else "no-such-registry.invalid:5000"  # a typo'd host: .invalid never resolves
        )
        cosign = str(COSIGNS["cosign3"])
        key, _ = make_key_pair(cosign, tmp_path / "keys" / "cosign")
        started = time.monotonic()
        done = runner.run(
            "build-sign-verify",
            "--context",
            str(make_context(tmp_path / "ctx")),
            "--image",
            f"{registry}/app",
            "--tag",
            "v1",
            "--key",
            str(key),
            "--log-format",
            "json",
            env={"INVOKE_PROVENANCE_COSIGN": cosign},
        )
        took = time.monotonic() - started
    assert done.returncode == 4, done.stderr
    records = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert not retries(records)  # a few quick tries of its own, not the retry policy's
    failure = records[-1]["failure"]
    assert isinstance(failure, dict) and "cannot reach the registry" in failure["message"]
    assert not any(r["event"] == "step.start" for r in records)  # nothing started, or shown
    # The fail-fast contract (seconds, not the 300 s budget), not a speed benchmark.
    assert took < 30, took


@pytest.mark.integration
def test_at_twenty_percent_faults_a_lost_attestation_is_never_a_policy_failure(
    runner: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Attestations on, in both formats on cosign 3 (the `.att` tag, and bundles whose fallback
    index is typed through the faults, and whose lines a later writer drops): the run verifies,
    or fails as the registry's failure (exit 4); never exit 3, which would call a registry's
    lost write a signature that doesn't satisfy the policy. One run: one takes 1-3 minutes at
    this rate (cosign 2's classic-only path is the 10 % test's)."""
    proxy.set_faults(Faults(rate=0.20, kinds={"503": 2, "429": 1, "drop": 1}, seed=2001))
    both = {"INVOKE_PROVENANCE_BUNDLE_FORMAT": "both"}
    done, image, records, took = run_job(
        runner, proxy, str(COSIGNS["cosign3"]), tmp_path / "run", **both
    )
    proxy.set_faults(Faults())
    print(f"exit {done.returncode} in {took:.1f}s, {len(retries(records))} retries")
    assert done.returncode in (0, 4), done.stderr[-3000:]
    assert sum(proxy.stats().faults.values()) > 0
    if done.returncode == 0:
        summary = records[-1]
        assert summary["verified"] is True
        assert summary["digest"] == registry.digest(f"{direct(image, proxy)}:v1")
    else:
        failure = json.loads((runner.cwd / "provenance-report.json").read_text())["failure"]
        print(f"failed in {failure['step']}: {failure['message']}")
        assert failure["exit_code"] == 4, failure


@pytest.mark.integration
@pytest.mark.classic
def test_at_twenty_percent_faults_every_run_verifies_on_either_engine(
    runner: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    """Step 14's target with three runs (the bench makes ten: bench/faults.py): at 20 % faults,
    half 503, a quarter 429 and a quarter dropped connections, each run verifies the digest the
    registry holds. On the classic engine too, whose image is saved and pushed by our client
    blob by blob, each refused request made again within the call, never a whole
    `buildx build --push` again and never a staging tag."""
    cosign = str(COSIGNS["cosign3"])
    retried = 0
    for run in range(3):
        faults = Faults(rate=0.20, kinds={"503": 2, "429": 1, "drop": 1}, seed=3000 + run)
        proxy.set_faults(faults)
        done, image, records, took = run_job(runner, proxy, cosign, tmp_path / f"run{run}")
        proxy.set_faults(Faults())
        assert done.returncode == 0, f"run {run}:\n{done.stderr[-3000:]}"
        assert records[-1]["verified"] is True
        assert records[-1]["digest"] == registry.digest(f"{direct(image, proxy)}:v1")
        tags = registry.tags(direct(image, proxy))
        assert not [t for t in tags if t.startswith("provenance-staging-")], tags
        report = json.loads((runner.cwd / "provenance-report.json").read_text())
        retried += report["registry_traffic"]["retried"]
        print(f"run {run}: {took:.1f}s, {report['registry_traffic']}")
    assert sum(proxy.stats().faults.values()) > 0 and retried > 0  # the faults did bite
