"""promote: a verified two-platform image, with its SLSA provenance, moved from staging to
production, within one registry and across two of the test bed, and verified there by what
users run: cosign 2 and 3 as the tutorial calls them, cosign verify-attestation, sid's skopeo
under a `sigstoreSigned` + `matchRepository` policy (which reads the destination's own
signature), and our own verify. A source that fails verify leaves the destination untouched.
The jobs' other ways (keyless in GitLab, a set, 10 % faults) are test_promote_jobs.py's.

One build serves the first three tests (a module fixture): staging is signed with key A in both
formats (the classic `.sig`, cosign 3's bundles in the referrers fallback index), the promoting
job signs with key B, in both formats too.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.sigstore import cosign2_trust_files
from tests.integration import pipelines
from tests.integration.conftest import (
    COSIGNS,
    TOOLS,
    Registry,
    Runner,
    make_context,
    make_key_pair,
)
from tests.testbed import bed, verifiers
from tests.testbed import sigstore as sigstore_bed

pytestmark = pytest.mark.integration

PLATFORMS = "linux/amd64,linux/arm64"
COSIGN = str(COSIGNS["cosign3"])
PROMOTED_FROM = "dev.provenance.promoted.from"


@dataclass
class Staged:
    """The image staging holds: built, signed with key A and attested by a GitLab job."""

    env: dict[str, str]
    repository: str
    digest: str
    platforms: list[tuple[str, str]]  # (os/arch, digest)
    key_a: Path
    pub_a: Path
    key_b: Path
    pub_b: Path

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"


@pytest.fixture(scope="module")
def staged(
    testbed: bed.TestBed, sigstore: sigstore_bed.Sigstore, tmp_path_factory: pytest.TempPathFactory
) -> Staged:
    """One build for the module: a two-platform build with its provenance takes half a minute."""
    if testbed.engine == "classic":
        pytest.skip("the classic engine builds one platform into a single manifest")
    tmp_path = tmp_path_factory.mktemp("staged")
    runner = Runner(testbed, tmp_path, sigstore)
    password = "pw-" + uuid.uuid4().hex[:8]
    key_a, pub_a = make_key_pair(COSIGN, tmp_path / "a" / "cosign", password)
    key_b, pub_b = make_key_pair(COSIGN, tmp_path / "b" / "cosign", password)
    env = pipelines.gitlab_key_mode(runner.testbed, COSIGN, password)
    repository = env["CI_REGISTRY_IMAGE"] + "/staging"
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(make_context(tmp_path / "ctx")),
        "--image",
        repository,
        "--key",
        str(key_a),
        "--platform",
        PLATFORMS,
        "--bundle-format",
        "both",  # the classic .sig and cosign 3's bundles, listed in the fallback index
        env=env,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    platforms = sorted({(p["platform"], p["digest"]) for p in report["verify"]["platforms"]})
    assert len(platforms) == 2 and "attestations" in report, report.keys()
    return Staged(env, repository, report["build"]["digest"], platforms, key_a, pub_a, key_b, pub_b)


def promote(runner: Runner, staged: Staged, to: str, *more: str, pub: Path | None = None) -> Any:
    """Staging (signed by A) to `to`, signed there by B in both formats, tagged 1.0."""
    argv = ["promote", "--from", staged.ref, "--to", to, "--tag", "1.0", "--key", str(staged.key_b)]
    argv += ["--public-key", str(pub or staged.pub_a), "--bundle-format", "both", *more]
    return runner.run(*argv, env=staged.env)


def cosign(registry: Registry, major: int, subcommand: str, ref: str, *flags: str) -> Any:
    """cosign as the tutorial calls it, with the user's trust in our Sigstore."""
    env = registry.env()
    trust: list[str] = []
    if major == 3:
        trust = ["--trusted-root", str(registry.sigstore.trusted_root)]
    else:
        env.update(cosign2_trust_files(registry.sigstore.trusted_root, registry.config / "t2"))
    return subprocess.run(
        [str(COSIGNS[f"cosign{major}"]), subcommand, *trust, *flags, ref],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def payloads(stdout: str) -> list[dict[str, Any]]:
    """What `cosign verify` printed: a JSON list of the verified payloads per line."""
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith(("[", "{"))]
    return [p for line in lines for p in (line if isinstance(line, list) else [line])]


def skopeo(registry: Registry, ref: str, pub: Path, platform: str, folder: Path) -> bool:
    """sid's skopeo pulling one platform under sigstoreSigned + matchRepository for `pub`."""
    testbed = registry.testbed
    secure = ref.startswith(testbed.secure_registry + "/")
    verdict = verifiers.skopeo_sigstore(
        ref,
        pub,
        platform=tuple(platform.split("/")[:2]),  # type: ignore[arg-type]
        folder=folder,
        tls_verify=secure,
        creds=(testbed.username, testbed.password) if secure else None,
        cert_dir=None,
    )
    return verdict.ok


def check_destination(
    runner: Runner, registry: Registry, staged: Staged, destination: str, folder: Path
) -> None:
    """Everything a user of `destination:1.0` runs, and what the report says."""
    ref = f"{destination}@{staged.digest}"
    assert registry.digest(f"{destination}:1.0") == staged.digest
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    promoted = report["promote"]
    assert promoted["source"]["reference"] == staged.ref
    assert promoted["destination"]["reference"] == ref
    assert str(staged.pub_a) in promoted["source"]["signer"]
    assert str(staged.pub_b) in promoted["destination"]["signer"]
    assert promoted["published"] == ["1.0"]
    for major in (2, 3):
        done = cosign(registry, major, "verify", ref, "--key", str(staged.pub_b), "-a", "tag=1.0")
        assert done.returncode == 0, f"cosign {major}: {done.stderr}"
        found = payloads(done.stdout)
        mine = [p for p in found if (p.get("optional") or {}).get("tag") == "1.0"]
        assert mine and mine[0]["optional"][PROMOTED_FROM] == staged.ref
        assert mine[0]["optional"]["com.gitlab.ci.commit.sha"] == staged.env["CI_COMMIT_SHA"]
        # What matchRepository reads: this repository (a bundle adds @digest to it).
        named = mine[0]["critical"]["identity"]["docker-reference"]
        assert named.split("@")[0] == destination, named
        for _, digest in staged.platforms:  # each platform, by its own digest
            one = cosign(
                registry, major, "verify", f"{destination}@{digest}", "--key", str(staged.pub_b)
            )
            assert one.returncode == 0, f"cosign {major} on {digest}: {one.stderr}"
        attested = cosign(
            registry,
            major,
            "verify-attestation",
            ref,
            "--key",
            str(staged.pub_a),
            "--type",
            "slsaprovenance1",
        )
        assert attested.returncode == 0, f"cosign {major} verify-attestation: {attested.stderr}"
    # cosign 3 asked for the new bundle finds the one made here (the copied ones are A's).
    bundle = cosign(
        registry,
        3,
        "verify",
        ref,
        "--key",
        str(staged.pub_b),
        "-a",
        "tag=1.0",
        "--new-bundle-format=true",
    )
    assert bundle.returncode == 0, bundle.stderr
    kinds = {p["critical"]["type"] for p in payloads(bundle.stdout)}
    assert "https://sigstore.dev/cosign/sign/v1" in kinds, kinds  # a bundle, not the .sig
    for platform, _ in staged.platforms:
        assert skopeo(registry, f"{destination}:1.0", staged.pub_b, platform, folder / "sk")
    # Our own verify, as a later job runs it: this signer, the annotations, the tag, the
    # copied provenance.
    ours = runner.run(
        "verify",
        "--image",
        destination,
        "--digest",
        staged.digest,
        "--tag",
        "1.0",
        "--public-key",
        str(staged.pub_b),
        env=staged.env,
    )
    assert ours.returncode == 0, ours.stderr[-3000:]
    attestations = runner.run(
        "verify-attestation",
        "--image",
        destination,
        "--digest",
        staged.digest,
        "--public-key",
        str(staged.pub_a),
        env=staged.env,
    )
    assert attestations.returncode == 0, attestations.stderr[-3000:]


def test_promote_within_one_registry_carries_signatures_and_signs_there(
    runner: Runner, registry: Registry, staged: Staged, tmp_path: Path
) -> None:
    destination = staged.env["CI_REGISTRY_IMAGE"] + "/production"
    done = promote(runner, staged, destination)
    assert done.returncode == 0, done.stderr[-4000:]
    copied = json.loads((runner.cwd / "provenance-report.json").read_text())["promote"]["copied"]
    # Within a registry every blob is mounted from staging: none is read or sent.
    assert sum(r["blobs"]["mounted"] for r in copied) > 0
    assert sum(r["blobs"]["sent"] for r in copied) == 0
    # The .sig, .att and referrers fallback index of the index and of each platform.
    kinds = sorted({r["kind"] for r in copied})
    assert kinds == ["attestations", "image", "referrer", "referrers", "signatures"], kinds
    assert len([r for r in copied if r["kind"] == "referrers"]) >= 3, copied
    check_destination(runner, registry, staged, destination, tmp_path)
    # The copied signature names staging: matchRepository refuses it at production (why
    # promote signs there), while staging's own still passes.
    platform = staged.platforms[0][0]
    assert not skopeo(registry, f"{destination}:1.0", staged.pub_a, platform, tmp_path / "a")
    assert skopeo(registry, staged.ref, staged.pub_a, platform, tmp_path / "s")
    # Promoted again: what is there already is skipped, and it still verifies.
    again = promote(runner, staged, destination)
    assert again.returncode == 0, again.stderr[-3000:]
    copied = json.loads((runner.cwd / "provenance-report.json").read_text())["promote"]["copied"]
    assert copied and all(not row["manifests"] for row in copied), copied


def test_promote_across_two_registries(
    runner: Runner, registry: Registry, staged: Staged, tmp_path: Path
) -> None:
    destination = f"{runner.testbed.plain_registry}/production/app-{uuid.uuid4().hex[:6]}"
    done = promote(runner, staged, destination)
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    blobs = [row["blobs"] for row in report["promote"]["copied"]]
    # Across registries each blob is read and put: nothing to mount from.
    assert sum(b["sent"] for b in blobs) > 0 and sum(b["mounted"] for b in blobs) == 0
    check_destination(runner, registry, staged, destination, tmp_path)


def test_a_source_that_fails_verify_copies_nothing_and_moves_no_tag(
    runner: Runner, registry: Registry, staged: Staged, tmp_path: Path
) -> None:
    destination = staged.env["CI_REGISTRY_IMAGE"] + "/held"
    elsewhere = staged.platforms[0][1]  # the tag names another manifest there already
    registry.crane("copy", f"{staged.repository}@{elsewhere}", f"{destination}:1.0")
    _, wrong = make_key_pair(COSIGN, tmp_path / "wrong" / "cosign")
    done = promote(runner, staged, destination, pub=wrong)
    assert done.returncode == 3, done.stderr[-3000:]
    assert registry.digest(f"{destination}:1.0") == elsewhere
    assert registry.tags(destination) == ["1.0"]  # no .sig, .att or fallback tag
    gone = subprocess.run(
        [str(TOOLS / "bin" / "crane"), "manifest", f"{destination}@{staged.digest}"],
        env=registry.env(),
        capture_output=True,
        text=True,
    )
    assert gone.returncode != 0, "the image was copied though its source failed verify"
    # Bad input: --from without a digest is refused before anything runs (exit 2).
    bad = runner.run("promote", "--from", staged.repository, "--to", destination, env=staged.env)
    assert bad.returncode == 2 and "has no digest" in bad.stderr, bad.stderr
