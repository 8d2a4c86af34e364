"""A network profile in front of the registry and Sigstore (tests/testbed/netprofile.py), against
real traffic: buildx pushing through it, and a keyless run whose every Sigstore call goes through
it. The shaper's own accounting is checked, never a wall clock: the delay it applied, the bytes
it passed, and what each Sigstore service was asked. The registry's requests are counted exactly
too, by client and kind, for each cosign major: the contract case, and keyless with attestations.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections import Counter
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Runner, make_context, make_key_pair, tool_path
from tests.testbed import sigstore as sigstore_bed
from tests.testbed.bed import TestBed
from tests.testbed.faultproxy import FaultProxy
from tests.testbed.netprofile import Link, Shaper

pytestmark = pytest.mark.integration


def pushed_bytes(testbed: TestBed, ref: str, tmp_path: Path) -> int:
    """What a push of `ref` had to upload: every manifest's bytes and every blob's size."""
    env = {**os.environ, **testbed.environ(), "PATH": tool_path(), "DOCKER_CONFIG": str(tmp_path)}

    def crane(*args: str) -> str:
        done = subprocess.run(["crane", *args], env=env, capture_output=True, check=True)
        return done.stdout.decode()

    total, blobs = 0, set[tuple[str, int]]()
    pending = [ref]
    while pending:
        raw = crane("manifest", pending.pop())
        total += len(raw.encode())
        manifest = json.loads(raw)
        repository = ref.split("@")[0].rsplit(":", 1)[0]
        pending += [f"{repository}@{m['digest']}" for m in manifest.get("manifests", [])]
        for blob in [manifest.get("config"), *manifest.get("layers", [])]:
            if blob:
                blobs.add((blob["digest"], blob["size"]))
    return total + sum(size for _, size in blobs)


def test_a_push_through_a_profile_is_held_and_paced_as_the_profile_says(
    testbed: TestBed, tmp_path: Path
) -> None:
    link = Link(rtt=0.003, up_bits=400_000_000)
    shaper = Shaper(link)
    # Every blob new to the registry: a layer pushed before (busybox) would be mounted from the
    # repository that has it, and pass no bytes. Random bytes don't compress: paced for real.
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "noise.bin").write_bytes(os.urandom(3_000_000))
    (context / "Dockerfile").write_text("FROM scratch\nCOPY noise.bin /noise.bin\n")
    with FaultProxy(upstream=testbed.plain_registry, shaper=shaper) as proxy:
        ref = f"{proxy.address}/fixture-net-{uuid.uuid4().hex[:8]}:v1"
        env = {**os.environ, **testbed.environ(), "PATH": tool_path()}
        env["DOCKER_CONFIG"] = str(tmp_path)
        push = ["docker", "buildx", "build", "--push", "--provenance=false", "--tag", ref]
        done = subprocess.run(
            [*push, str(context)],
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert done.returncode == 0, done.stderr
        seen_by_proxy = proxy.stats().seen
        direct = ref.replace(proxy.address, testbed.plain_registry)
    seen = shaper.stats()
    assert set(seen) == {"registry"}
    registry = seen["registry"]
    assert registry.requests == seen_by_proxy
    assert 1 <= registry.connections <= registry.requests
    # One round trip per request and two more per connection opened, nothing else.
    assert registry.delay == pytest.approx(
        link.rtt * (registry.requests + 2 * registry.connections)
    )
    # Every byte it passed was paced, and they are the bytes the image is made of.
    assert registry.up_bytes == pushed_bytes(testbed, direct, tmp_path)
    assert registry.up_bytes > 3_000_000
    assert registry.paced == pytest.approx(registry.up_bytes * 8 / link.up_bits)


def test_a_keyless_run_with_attestations_asks_each_service_exactly_so_often(
    runner: Runner, context: Path, cosign: str
) -> None:
    link = Link(rtt=0.002, fulcio=0.01, rekor_write=0.02)
    shaper = Shaper(link, sigstore=True)
    upstream = runner.sigstore.url.removeprefix("http://")
    registry = FaultProxy(upstream=runner.testbed.plain_registry)
    with FaultProxy(upstream=upstream, shaper=shaper) as proxy, registry:
        env = pipelines.gitlab(runner.testbed)
        env.update(
            {
                "SIGSTORE_ID_TOKEN": runner.sigstore.mint(sigstore_bed.gitlab_claims(env)),
                "INVOKE_PROVENANCE_COSIGN": cosign,
                "INVOKE_PROVENANCE_FULCIO_URL": f"http://{proxy.address}",
                "INVOKE_PROVENANCE_REKOR_URL": f"http://{proxy.address}",
            }
        )
        image = f"{registry.address}/keyless/app-{uuid.uuid4().hex[:8]}"
        args = ("--context", str(context), "--image", image, "--tag", "v1")
        done = runner.run("build-sign-verify", *args, env=env)
        assert done.returncode == 0, done.stderr
        events = registry.stats().log
    requests = Counter((who(e.agent), e.method, kind_of(e.path)) for e in events)
    assert requests == KEYLESS_ATTESTED_REQUESTS[Path(cosign).name], sorted(requests.items())
    seen = shaper.stats()
    counts = {name: service.requests for name, service in seen.items()}
    # The preflight asks whether Fulcio and Rekor answer (one probe each: the test bed serves
    # both at one URL); then sign and attest take a certificate and a log entry each. Verify
    # asks nothing: the bundle holds the entry's proof. A new round trip fails here.
    assert counts == {"probe": 2, "fulcio": 2, "rekor-write": 2}
    assert seen["fulcio"].delay == pytest.approx(
        2 * link.fulcio + link.rtt * (2 + 2 * seen["fulcio"].connections)
    )
    assert seen["rekor-write"].delay == pytest.approx(
        2 * link.rekor_write + link.rtt * (2 + 2 * seen["rekor-write"].connections)
    )


def test_the_report_counts_the_tools_own_registry_requests_as_the_proxy_saw_them(
    runner: Runner, cosign: str, tmp_path: Path
) -> None:
    # The push of the current engine is our own (blob by blob), so are the tag reads and the
    # publish: the report's count must be exactly what reached the registry with our agent.
    key, _ = make_key_pair(cosign, tmp_path / "keys" / "cosign")
    context = make_context(tmp_path / "ctx")
    with FaultProxy(upstream=runner.testbed.plain_registry) as proxy:
        image = f"{proxy.address}/counted/app-{uuid.uuid4().hex[:8]}"
        args = ("--context", str(context), "--image", image, "--tag", "v1", "--key", str(key))
        done = runner.run("build-sign-verify", *args, env={"INVOKE_PROVENANCE_COSIGN": cosign})
        assert done.returncode == 0, done.stderr
        events = proxy.stats().log
    ours = [e for e in events if e.agent == "provenance-tasks"]
    theirs = [e for e in events if e.agent != "provenance-tasks"]
    assert ours and theirs  # cosign's requests went through too, and are not ours
    traffic = json.loads((runner.cwd / "provenance-report.json").read_text())["registry_traffic"]
    assert traffic["requests"] == len(ours)
    assert traffic["uploaded_bytes"] == sum(e.length for e in ours)
    assert traffic["uploaded_bytes"] > 0  # the image itself went up through our client


def who(agent: str) -> str:
    """Whose request: ours, cosign's (go-containerregistry names cosign in its agent) or another."""
    if agent.startswith("provenance-tasks"):
        return "ours"
    return "cosign" if "cosign" in agent else agent.split("/")[0] or "unnamed"


# The contract case (key mode, no log, no attestation) on loopback, as the proxy saw it: each
# kind of request per client, for each cosign major. A new round trip changes a number here.
# Ours: the push (3 blobs: a HEAD, then a POST and a PUT each; the manifest by digest), the tag
# audit's HEAD and the publish's PUT. cosign's: sign (its .sig read, 2 blobs up, the .sig
# manifest), then verify; cosign 3 also verifies as a consumer does (a second verify, which
# looks for bundles too: the referrers API and its fallback tag).
_OURS = {
    ("ours", "HEAD", "blobs"): 3,
    ("ours", "POST", "blobs/uploads"): 3,
    ("ours", "PUT", "blobs/uploads"): 3,
    ("ours", "PUT", "manifests digest"): 1,
    ("ours", "HEAD", "manifests tag"): 1,
    ("ours", "PUT", "manifests tag"): 1,
}
_COSIGN_SIGNS = {
    ("cosign", "HEAD", "manifests sig"): 1,
    ("cosign", "HEAD", "blobs"): 2,
    ("cosign", "POST", "blobs/uploads"): 2,
    ("cosign", "PATCH", "blobs/uploads"): 2,
    ("cosign", "PUT", "blobs/uploads"): 2,
    ("cosign", "PUT", "manifests sig"): 1,
}
CONTRACT_REQUESTS: dict[str, dict[tuple[str, str, str], int]] = {
    "cosign2": {
        **_OURS,
        **_COSIGN_SIGNS,
        ("cosign", "GET", "ping"): 3,
        ("cosign", "GET", "manifests digest"): 1,
        ("cosign", "GET", "manifests sig"): 2,
        ("cosign", "GET", "blobs"): 1,
    },
    "cosign3": {
        **_OURS,
        **_COSIGN_SIGNS,
        ("cosign", "GET", "ping"): 4,
        ("cosign", "GET", "manifests digest"): 1,
        ("cosign", "GET", "manifests sig"): 3,
        ("cosign", "GET", "blobs"): 2,
        ("cosign", "GET", "referrers"): 1,
        ("cosign", "GET", "manifests referrers tag"): 1,
    },
}

_COSIGN_ATTESTS = {
    ("cosign", "HEAD", "manifests att"): 1,
    ("cosign", "HEAD", "blobs"): 2,
    ("cosign", "POST", "blobs/uploads"): 2,
    ("cosign", "PATCH", "blobs/uploads"): 2,
    ("cosign", "PUT", "blobs/uploads"): 2,
    ("cosign", "PUT", "manifests att"): 1,
}
# Keyless with attestations: the same, plus attest's writes and verify-attestation's reads (the
# log entry and the certificate ride in the signature's layer: no more registry requests).
KEYLESS_ATTESTED_REQUESTS = {
    name: Counter(counts)
    + Counter(_COSIGN_ATTESTS)
    + Counter(
        {
            ("cosign", "GET", "ping"): 3,
            ("cosign", "GET", "manifests att"): 2,
            ("cosign", "GET", "blobs"): 1,
        }
    )
    for name, counts in CONTRACT_REQUESTS.items()
}


def kind_of(path: str) -> str:
    """A request's kind, without what changes from run to run (names, digests, upload ids)."""
    if path == "/v2/":
        return "ping"
    for part in ("blobs/uploads", "blobs", "manifests", "tags/list", "referrers"):
        if f"/{part}/" in path or path.endswith(f"/{part}"):
            suffix = path.rsplit("/", 1)[-1]
            if part == "manifests" and suffix.startswith("sha256-"):
                # cosign's .sig and .att tags, or the referrers API's fallback tag
                return f"manifests {suffix.rsplit('.', 1)[1] if '.' in suffix else 'referrers tag'}"
            if part == "manifests":
                return "manifests digest" if suffix.startswith("sha256:") else "manifests tag"
            return part
    return path


def test_the_contract_case_asks_the_registry_exactly_so_often(
    runner: Runner, cosign: str, tmp_path: Path
) -> None:
    key, _ = make_key_pair(cosign, tmp_path / "keys" / "cosign")
    context = make_context(tmp_path / "ctx")
    with FaultProxy(upstream=runner.testbed.plain_registry) as proxy:
        image = f"{proxy.address}/contract/app-{uuid.uuid4().hex[:8]}"
        args = ("--context", str(context), "--image", image, "--tag", "v1", "--key", str(key))
        done = runner.run(
            "build-sign-verify",
            *args,
            "--no-attest",
            "--no-tlog",
            env={"INVOKE_PROVENANCE_COSIGN": cosign},
        )
        assert done.returncode == 0, done.stderr
        events = proxy.stats().log
    counts = Counter((who(e.agent), e.method, kind_of(e.path)) for e in events)
    assert counts == CONTRACT_REQUESTS[Path(cosign).name], sorted(counts.items())
