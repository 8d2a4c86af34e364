"""Our Sigstore when it fails, and a job environment that would lead cosign astray.

The fault proxy (tests/testbed/faultproxy.py) sits in front of the Sigstore test bed: the bed's
keys are made at its start, so an outage is the proxy's, never a restart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner, annotations_of
from tests.testbed import sigstore as bed
from tests.testbed.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(runner: Runner) -> Iterator[FaultProxy]:
    upstream = runner.sigstore.url.removeprefix("http://")
    with FaultProxy(upstream=upstream) as running:
        yield running


def through(proxy: FaultProxy) -> dict[str, str]:
    """Settings that send every Fulcio and Rekor call through the proxy."""
    return {
        "INVOKE_PROVENANCE_FULCIO_URL": f"http://{proxy.address}",
        "INVOKE_PROVENANCE_REKOR_URL": f"http://{proxy.address}",
    }


def keyless(runner: Runner, cosign: str, **extra: str) -> dict[str, str]:
    env = pipelines.gitlab(runner.testbed)
    env.update(
        {
            "SIGSTORE_ID_TOKEN": runner.sigstore.mint(bed.gitlab_claims(env)),
            "INVOKE_PROVENANCE_COSIGN": cosign,
            **extra,
        }
    )
    return env


def keyless_payloads(
    registry: Registry, cosign: str, env: dict[str, str]
) -> list[dict[str, object]]:
    """What a plain cosign verify of the pipeline's image, by its keyless signer, returns."""
    digest = registry.digest(f"{env['CI_REGISTRY_IMAGE']}:{env['CI_COMMIT_SHORT_SHA']}")
    return registry.payloads(
        cosign,
        f"{env['CI_REGISTRY_IMAGE']}@{digest}",
        "--certificate-identity",
        pipelines.identity(env),
        "--certificate-oidc-issuer",
        pipelines.SERVER,
    )


def test_rekor_409_on_a_replayed_upload_is_retried_with_a_new_signature(
    runner: Runner, registry: Registry, context: Path, cosign: str, proxy: FaultProxy
) -> None:
    # The log takes the first upload but its answer is lost: cosign's own HTTP retry replays the
    # body and gets 409, and the entry it then asks for is not found (yet). cosign gives up.
    proxy.set_faults(
        Faults(rate=1.0, kinds={"lost": 1.0}, only=r"^POST /api/v1/log/entries$", limit=1)
    )
    proxy.always("404-manifest-unknown", only=r"^GET /api/v1/log/entries/")
    env = keyless(runner, cosign, **through(proxy))
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    assert "Rekor already holds this entry (409)" in done.stderr  # our retry, and why
    statuses = [(e.method, e.path, e.status) for e in proxy.stats().log]
    assert ("POST", "/api/v1/log/entries", 409) in statuses
    assert [s for s in statuses if s[:2] == ("POST", "/api/v1/log/entries")][-1][2] == 201
    # Exactly one signature reached the registry: the failed attempt pushed nothing.
    payloads = keyless_payloads(registry, cosign, env)
    assert len(payloads) == 1


def test_a_sigstore_outage_is_waited_out(
    runner: Runner, context: Path, cosign: str, proxy: FaultProxy
) -> None:
    # Everything answers 503 for 6 s from the first certificate request on: longer than
    # cosign's own retries, shorter than our budget.
    proxy.outage(6, start_after=r"^POST /api/v./signingCert")
    env = keyless(runner, cosign, **through(proxy))
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    assert "attempt 1 failed" in done.stderr and "VERIFIED" in done.stderr
    assert proxy.stats().faults.get("outage", 0) >= 1


def test_a_sigstore_that_stays_down_fails_with_exit_4_naming_it(
    runner: Runner, context: Path, cosign: str, proxy: FaultProxy
) -> None:
    proxy.always("503", only=r"^POST /api/v./signingCert")
    env = keyless(runner, cosign, INVOKE_PROVENANCE_RETRY_BUDGET="8", **through(proxy))
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 4, done.stderr
    assert "kept failing" in done.stderr
    assert "Fulcio" in done.stderr.split("provenance-tasks: ", 1)[1]  # the message names it


def test_an_unreachable_sigstore_fails_before_anything_is_pushed(
    runner: Runner, registry: Registry, context: Path
) -> None:
    env = keyless(runner, str(COSIGNS["cosign3"]), INVOKE_PROVENANCE_REKOR_URL="http://127.0.0.1:9")
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 4, done.stderr
    assert "Rekor at http://127.0.0.1:9 does not answer" in done.stderr
    assert "build " not in done.stderr.split("provenance-tasks: ", 1)[0].split("Summary")[0]
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])


STRAY = {
    # What other jobs' variables could make cosign do if it saw them.
    "COSIGN_KEY": "/nonexistent/cosign.key",
    "COSIGN_NEW_BUNDLE_FORMAT": "true",
    "COSIGN_TLOG_UPLOAD": "false",
    "COSIGN_USE_SIGNING_CONFIG": "true",
    "COSIGN_EXPERIMENTAL": "1",
    "COSIGN_CERTIFICATE_IDENTITY": "https://evil.example/x",
    "SIGSTORE_ROOT_FILE": "/nonexistent/root.pem",
    "SIGSTORE_REKOR_PUBLIC_KEY": "/nonexistent/rekor.pub",
    "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE": "/nonexistent/ctlog.pub",
    "TUF_ROOT": "/nonexistent/tuf",
    "TUF_MIRROR": "http://127.0.0.1:9",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "http://127.0.0.1:9/token",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "stray-request-token",
}


def test_stray_cosign_variables_change_nothing(
    runner: Runner, registry: Registry, context: Path, cosign: str
) -> None:
    env = keyless(runner, cosign, **STRAY)
    before = len(runner.sigstore.requests())
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    asked = [f"{r['method']} {r['path']}" for r in runner.sigstore.requests()[before:]]
    assert "POST /api/v1/log/entries" in asked  # the log stayed on
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert {s["format"] for s in report["verify"]["signatures"]} == {"classic"}


def test_cosign_repository_is_a_setting_passed_on_on_purpose(
    runner: Runner, registry: Registry, context: Path, key_pair: tuple[Path, Path, str], cosign: str
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    signatures = f"{env['CI_REGISTRY_IMAGE']}-signatures"
    env["COSIGN_REPOSITORY"] = signatures
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr
    assert [t for t in registry.tags(signatures) if t.endswith(".sig")]  # stored there
    assert not [t for t in registry.tags(env["CI_REGISTRY_IMAGE"]) if t.endswith(".sig")]


def test_a_timestamp_authority_countersigns_when_configured(
    runner: Runner, registry: Registry, context: Path, cosign: str
) -> None:
    env = keyless(runner, cosign, INVOKE_PROVENANCE_TSA_URL=runner.sigstore.tsa_url)
    before = len(runner.sigstore.requests())
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    asked = [f"{r['method']} {r['path']}" for r in runner.sigstore.requests()[before:]]
    assert "POST /api/v1/timestamp" in asked
    payloads = keyless_payloads(registry, cosign, env)
    assert all("RFC3161Timestamp" in p["optional"] for p in payloads)  # type: ignore[operator]


def test_a_signing_config_alone_serves_both_majors(
    runner: Runner, registry: Registry, context: Path, cosign: str
) -> None:
    env = keyless(  # "" unsets the URLs the runner sets for every other test
        runner,
        cosign,
        INVOKE_PROVENANCE_FULCIO_URL="",
        INVOKE_PROVENANCE_REKOR_URL="",
        INVOKE_PROVENANCE_SIGNING_CONFIG=str(runner.sigstore.signing_config),
    )
    done = runner.run("build-sign-verify", "--context", str(context), env=env)
    assert done.returncode == 0, done.stderr
    payloads = keyless_payloads(registry, cosign, env)
    tag = env["CI_COMMIT_SHORT_SHA"]
    assert any(annotations_of(p).get("tag") == tag for p in payloads)


def test_a_cancelled_job_leaves_no_login_or_token_behind(
    runner: Runner, context: Path, cosign: str, proxy: FaultProxy, tmp_path: Path
) -> None:
    """GitLab cancels a job with SIGTERM: the run exits through its cleanup."""
    import os
    import signal
    import subprocess
    import sys
    import time

    proxy.always("503", only=r"^POST /api/v./signingCert")  # the run waits in its retries
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = runner.env(keyless(runner, cosign, TMPDIR=str(temp), **through(proxy)))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "provenance_tasks.cli",
            "build-sign-verify",
            "--context",
            str(context),
        ],
        cwd=runner.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not any(e.path.endswith("signingCert") for e in proxy.stats().log):
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.1)
    assert [p.name for p in temp.iterdir() if p.name.startswith("provenance-")]  # in use now
    os.kill(process.pid, signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM
    assert not [p.name for p in temp.iterdir() if p.name.startswith("provenance-")]
