"""promote as jobs run it: through the fault proxy at 10 % faults, keyless in GitLab with the
source named by the build's report, and a set of images promoted together. The two-platform
image and what users verify at the destination are test_promote.py's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, make_context, make_key_pair
from tests.integration.test_promote import COSIGN, cosign
from tests.testbed.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.integration


@pytest.fixture
def proxy(runner: Runner) -> Iterator[FaultProxy]:
    with FaultProxy(upstream=runner.testbed.plain_registry) as started:
        yield started


def test_promote_through_ten_percent_faults_lands_and_verifies(
    runner: Runner, registry: Registry, proxy: FaultProxy, tmp_path: Path
) -> None:
    key, pub = make_key_pair(COSIGN, tmp_path / "keys" / "cosign")
    env = pipelines.gitlab_key_mode(runner.testbed, COSIGN, "")
    name = f"flaky/app-{uuid.uuid4().hex[:6]}"
    staging = f"{proxy.address}/{name}/staging"  # signed under the name promote reads it by
    built = runner.run(
        "build-sign-verify",
        "--context",
        str(make_context(tmp_path / "ctx")),
        "--image",
        staging,
        "--tag",
        "s1",
        "--key",
        str(key),
        env=env,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    digest = json.loads((runner.cwd / "provenance-report.json").read_text())["build"]["digest"]
    proxy.set_faults(Faults(rate=0.10, kinds={"503": 1, "429": 1, "drop": 1}, seed=4242))
    done = runner.run(
        "promote",
        "--from",
        f"{proxy.address}/{name}/staging@{digest}",
        "--to",
        f"{proxy.address}/{name}/production",
        "--tag",
        "1.0",
        "--key",
        str(key),
        env=env,
    )
    faulted = proxy.stats().faults
    proxy.set_faults(Faults())
    assert done.returncode == 0, done.stderr[-4000:]
    # The faults bit: a call retried by the run's policy, or an operation our registry client
    # tried again within its call (the report counts those).
    traffic = json.loads((runner.cwd / "provenance-report.json").read_text())["registry_traffic"]
    assert "retrying in" in done.stderr or traffic["retried"] > 0, (
        "no fault hit the promote: the test proved nothing"
    )
    production = f"{runner.testbed.plain_registry}/{name}/production"
    assert registry.digest(f"{production}:1.0") == digest, faulted
    verified = cosign(
        registry, 3, "verify", f"{production}@{digest}", "--key", str(pub), "-a", "tag=1.0"
    )
    assert verified.returncode == 0, verified.stderr

    # The copy's own retries, made certain: only promote PUTs a manifest by its digest.
    proxy.reset_stats()
    proxy.set_faults(Faults(rate=1.0, kinds={"503": 1}, only=r"^PUT .*/manifests/sha256:", limit=2))
    again = runner.run(
        "promote",
        "--from",
        f"{proxy.address}/{name}/staging@{digest}",
        "--to",
        f"{proxy.address}/{name}/release",
        "--tag",
        "1.0",
        "--key",
        str(key),
        "--log-format",
        "json",
        env=env,
    )
    stats = proxy.stats()
    proxy.set_faults(Faults())
    assert again.returncode == 0, again.stderr[-4000:]
    assert stats.faults == {"503": 2}
    # Each refused PUT was made again within the copy (registry/failures.again) and stored;
    # the run's policy, which logs its retries, was not needed.
    puts = [e for e in stats.log if e.method == "PUT" and "/manifests/sha256:" in e.path]
    for refused in [e for e in puts if e.outcome == "503"]:
        assert any(
            e.path == refused.path and e.status == 201 for e in puts if e.time > refused.time
        )
    records = [json.loads(line) for line in again.stderr.splitlines() if line.startswith("{")]
    assert not [r for r in records if r.get("step") == "copy" and "retrying in" in r["event"]]
    release = f"{runner.testbed.plain_registry}/{name}/release"
    assert registry.digest(f"{release}:1.0") == digest

    # A registry that keeps failing the copy: exit 4 once the retries run out, no tag there.
    proxy.set_faults(Faults(rate=1.0, kinds={"503": 1}, only=r"^PUT .*/manifests/sha256:"))
    failed = runner.run(
        "promote",
        "--from",
        f"{proxy.address}/{name}/staging@{digest}",
        "--to",
        f"{proxy.address}/{name}/broken",
        "--tag",
        "1.0",
        "--key",
        str(key),
        env={**env, "INVOKE_PROVENANCE_RETRY_ATTEMPTS": "2", "INVOKE_PROVENANCE_RETRY_WAIT": "0.1"},
    )
    proxy.set_faults(Faults())
    assert failed.returncode == 4, failed.stderr[-3000:]
    assert "kept failing" in failed.stderr and "copy" in failed.stderr, failed.stderr[-2000:]
    assert registry.holds_nothing(f"{runner.testbed.plain_registry}/{name}/broken")


def test_a_keyless_promote_in_gitlab_signs_with_the_promoting_pipelines_identity(
    runner: Runner, registry: Registry, tmp_path: Path
) -> None:
    """The component's way: keyless in GitLab, no key and no signer flag anywhere, and no
    --from: the build's report names the source. The source is verified against the pipeline's
    own identity and everything its report recorded; the destination is signed with it."""
    from tests.integration.test_sigstore import keyless_gitlab

    env, _ = keyless_gitlab(runner, COSIGN)
    staging = env["CI_REGISTRY_IMAGE"] + "/staging"
    built = runner.run(
        "build-sign-verify",
        "--context",
        str(make_context(tmp_path / "ctx")),
        "--image",
        staging,
        env=env,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    digest = json.loads((runner.cwd / "provenance-report.json").read_text())["build"]["digest"]
    production = env["CI_REGISTRY_IMAGE"] + "/production"
    # No --from: the build's report here names the image, and what its signature must say.
    done = runner.run("promote", "--to", production, "--tag", "1.0", env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    promoted = report["promote"]
    assert promoted["source"]["reference"] == f"{staging}@{digest}"
    expected = report["source_verify"]["expected"][0]["annotations"]
    assert expected["com.gitlab.ci.job.id"] == env["CI_JOB_ID"]  # the signing job's own
    identity = pipelines.identity(env)
    assert (
        identity in promoted["source"]["signer"] and identity in promoted["destination"]["signer"]
    )
    for major in (2, 3):
        verified = cosign(
            registry,
            major,
            "verify",
            f"{production}@{digest}",
            "--certificate-identity",
            identity,
            "--certificate-oidc-issuer",
            pipelines.SERVER,
            "-a",
            "tag=1.0",
        )
        assert verified.returncode == 0, f"cosign {major}: {verified.stderr}"


def test_a_set_promotes_each_image_under_to_by_its_name(
    runner: Runner, registry: Registry, tmp_path: Path
) -> None:
    """invoke.yaml's images: built together, then promoted together from the set's report."""
    key, pub = make_key_pair(COSIGN, tmp_path / "keys" / "cosign")
    names = ["api", "web"]
    lines = ["provenance:", "  images:"]
    for name in names:
        make_context(runner.cwd / "services" / name)
        lines += [f"    - name: {name}", f"      context: services/{name}"]
    (runner.cwd / "invoke.yaml").write_text("\n".join(lines) + "\n")
    env = pipelines.gitlab_key_mode(runner.testbed, COSIGN, "")
    built = runner.run("build-sign-verify", "--key", str(key), "--no-attest", env=env)
    assert built.returncode == 0, built.stderr[-3000:]
    refs = {
        name: image["build"]["digest"]
        for name, image in json.loads((runner.cwd / "provenance-report.json").read_text())[
            "images"
        ].items()
    }
    base = env["CI_REGISTRY_IMAGE"] + "/production"
    done = runner.run(
        "promote", "--to", base, "--tag", "1.0", "--key", str(key), "--no-attest", env=env
    )
    assert done.returncode == 0, done.stderr[-4000:]
    images = json.loads((runner.cwd / "provenance-report.json").read_text())["images"]
    for name in names:
        destination = f"{base}/{name}"
        assert images[name]["promote"]["destination"]["reference"] == (
            f"{destination}@{refs[name]}"
        )
        assert registry.digest(f"{destination}:1.0") == refs[name]
        verified = cosign(
            registry, 3, "verify", f"{destination}@{refs[name]}", "--key", str(pub), "-a", "tag=1.0"
        )
        assert verified.returncode == 0, verified.stderr
