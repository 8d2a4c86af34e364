"""cosign 3's bundles on a registry without the referrers API (distribution 2.8), for real.

cosign 3 (its own CLI, no provenance-tasks) signs in the new bundle format and attests with a key,
logged in our own Sigstore's Rekor; its bundles land in the fallback tag `sha256-<hex>`, whose
index lists each "empty" and without annotations (sigstore/cosign#4641). `repair_fallback_index`
then types each from its manifest; crane reads the index back, and cosign 3 still verifies
both. No registry with the referrers API runs here: that path is unit-tested against a fake.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.adapters.registry.referrers import repair_fallback_index
from tests.integration.conftest import COSIGNS, TOOLS, Registry, make_key_pair
from tests.testbed import bed
from tests.testbed import sigstore as sigstore_bed

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]

EMPTY = "application/vnd.oci.empty.v1+json"
BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
SLSA = {
    "buildDefinition": {"buildType": "https://example.com/t", "externalParameters": {}},
    "runDetails": {"builder": {"id": "https://example.com/builder"}},
}


def cosign3() -> str:
    binary = COSIGNS["cosign3"]
    if not binary.exists():
        pytest.skip("cosign3 is not installed: run ci/install-tools")
    return str(binary)


def copy_of(registry: Registry, source: str, host: str) -> tuple[str, str]:
    """`source` copied to a repository of its own on `host` (the session's image is shared by
    other tests, whose verify a bundle would change: cosign#4573); (repository, digest)."""
    repository = f"{host}/referrers-{uuid.uuid4().hex[:8]}/app"
    registry.crane("copy", source, f"{repository}:v1")
    return repository, registry.digest(f"{repository}:v1")


def cosign(registry: Registry, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {**registry.env(), "COSIGN_PASSWORD": ""}
    return subprocess.run([cosign3(), *argv], env=env, capture_output=True, text=True)


def _trust(sigstore: sigstore_bed.Sigstore) -> list[str]:
    return [
        "--signing-config",
        str(sigstore.signing_config),
        "--trusted-root",
        str(sigstore.trusted_root),
    ]


def sign(registry: Registry, sigstore: sigstore_bed.Sigstore, key: Path, reference: str) -> None:
    """cosign 3's signature bundle of `reference`, by key, logged in the test bed's Rekor."""
    signed = cosign(
        registry,
        "sign",
        "--yes",
        "--key",
        str(key),
        "--new-bundle-format=true",
        *_trust(sigstore),
        "-a",
        "team=platform",
        reference,
    )
    assert signed.returncode == 0, signed.stderr


def attest(
    registry: Registry, sigstore: sigstore_bed.Sigstore, key: Path, reference: str, folder: Path
) -> None:
    """cosign 3's SLSA attestation bundle of `reference`."""
    predicate = folder / "slsa.json"
    predicate.write_text(json.dumps(SLSA))
    attested = cosign(
        registry,
        "attest",
        "--yes",
        "--key",
        str(key),
        *_trust(sigstore),
        "--type",
        "slsaprovenance1",
        "--predicate",
        str(predicate),
        reference,
    )
    assert attested.returncode == 0, attested.stderr


def sign_and_attest(
    registry: Registry, sigstore: sigstore_bed.Sigstore, key: Path, reference: str, folder: Path
) -> None:
    sign(registry, sigstore, key, reference)
    attest(registry, sigstore, key, reference, folder)


def fallback_index(registry: Registry, repository: str, digest: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        registry.crane("manifest", f"{repository}:sha256-{digest.removeprefix('sha256:')}")
    )
    return found


def verified(
    registry: Registry, sigstore: sigstore_bed.Sigstore, pub: Path, reference: str
) -> None:
    """cosign 3 verifies the signature and the attestation, as a user runs it."""
    trust = ["--key", str(pub), "--trusted-root", str(sigstore.trusted_root)]
    signature = cosign(
        registry, "verify", *trust, "--new-bundle-format=true", "-a", "team=platform", reference
    )
    assert signature.returncode == 0, signature.stderr
    attestation = cosign(
        registry, "verify-attestation", *trust, "--type", "slsaprovenance1", reference
    )
    assert attestation.returncode == 0, attestation.stderr


def test_the_fallback_index_cosign_3_writes_is_typed_and_still_verifies(
    testbed: bed.TestBed,
    registry: Registry,
    source_image: str,
    sigstore: sigstore_bed.Sigstore,
    tmp_path: Path,
) -> None:
    key, pub = make_key_pair(cosign3(), tmp_path / "keys" / "cosign")
    repository, digest = copy_of(registry, source_image, testbed.plain_registry)
    reference = f"{repository}@{digest}"
    sign_and_attest(registry, sigstore, key, reference, tmp_path)

    before = fallback_index(registry, repository, digest)
    # What cosign 3.1 leaves: two bundles, each listed "empty", without annotations
    assert len(before["manifests"]) == 2, before
    assert [d.get("artifactType") for d in before["manifests"]] == [EMPTY, EMPTY], before
    assert all("annotations" not in d for d in before["manifests"]), before

    repair = repair_fallback_index(repository, digest, config_dir=registry.config)

    after = fallback_index(registry, repository, digest)
    print("before:", json.dumps(before), "\nafter:", json.dumps(after))  # shown with -s
    assert repair.rewritten and len(repair.typed) == 2
    assert [d["digest"] for d in after["manifests"]] == [d["digest"] for d in before["manifests"]]
    predicate_types = set()
    for descriptor in after["manifests"]:
        manifest = json.loads(registry.crane("manifest", f"{repository}@{descriptor['digest']}"))
        assert descriptor["artifactType"] == BUNDLE == manifest["artifactType"]
        assert descriptor["annotations"] == manifest["annotations"]
        predicate_types.add(descriptor["annotations"]["dev.sigstore.bundle.predicateType"])
    assert predicate_types == {
        "https://sigstore.dev/cosign/sign/v1",
        "https://slsa.dev/provenance/v1",
    }
    verified(registry, sigstore, pub, reference)
    # Once typed, nothing more to write
    again = repair_fallback_index(repository, digest, config_dir=registry.config)
    assert not again.rewritten and fallback_index(registry, repository, digest) == after
    oras = TOOLS / "bin" / "oras"
    if oras.exists() or shutil.which("oras"):
        # What a client that filters by type finds: both bundles (before: none)
        found = subprocess.run(
            [
                str(oras) if oras.exists() else "oras",
                "discover",
                "--plain-http",
                "--format",
                "json",
                "--artifact-type",
                BUNDLE,
                reference,
            ],
            capture_output=True,
            text=True,
            env=registry.env(),
        )
        assert found.returncode == 0, found.stderr
        assert len(json.loads(found.stdout).get("referrers") or []) == 2, found.stdout


def test_a_later_bundle_is_typed_by_a_second_repair_and_the_first_stays_typed(
    testbed: bed.TestBed,
    registry: Registry,
    source_image: str,
    sigstore: sigstore_bed.Sigstore,
    tmp_path: Path,
) -> None:
    """cosign appends to the index it finds, keeping the lines already typed: one repair after
    the signing step and one after the attesting step leave every line typed."""
    key, pub = make_key_pair(cosign3(), tmp_path / "keys" / "cosign")
    repository, digest = copy_of(registry, source_image, testbed.plain_registry)
    reference = f"{repository}@{digest}"
    sign(registry, sigstore, key, reference)
    first = repair_fallback_index(repository, digest, config_dir=registry.config)
    assert len(first.typed) == 1
    attest(registry, sigstore, key, reference, tmp_path)
    mixed = fallback_index(registry, repository, digest)
    assert sorted(d["artifactType"] for d in mixed["manifests"]) == sorted([BUNDLE, EMPTY])

    second = repair_fallback_index(repository, digest, config_dir=registry.config)

    assert len(second.typed) == 1 and second.rewritten
    after = fallback_index(registry, repository, digest)
    assert [d["artifactType"] for d in after["manifests"]] == [BUNDLE, BUNDLE]
    verified(registry, sigstore, pub, reference)


def test_the_repair_logs_in_to_a_tls_registry_with_the_run_s_docker_config(
    testbed: bed.TestBed,
    registry: Registry,
    source_image: str,
    sigstore: sigstore_bed.Sigstore,
    tmp_path: Path,
) -> None:
    """The TLS registry with an htpasswd login, the login in a docker config (crane's): run in
    a process of its own, which trusts the test CA as a job's would (SSL_CERT_FILE)."""
    key, pub = make_key_pair(cosign3(), tmp_path / "keys" / "cosign")
    repository, digest = copy_of(registry, source_image, testbed.secure_registry)
    reference = f"{repository}@{digest}"
    sign_and_attest(registry, sigstore, key, reference, tmp_path)

    script = (
        "import sys; from pathlib import Path; "
        "from provenance_tasks.adapters.registry.referrers import repair_fallback_index as r; "
        "print(r(sys.argv[1], sys.argv[2], config_dir=Path(sys.argv[3])).describe())"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, repository, digest, str(registry.config)],
        env={**registry.env(), "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "2 referrers, 2 typed (was empty)" in done.stdout
    after = fallback_index(registry, repository, digest)
    assert [d["artifactType"] for d in after["manifests"]] == [BUNDLE, BUNDLE]
    verified(registry, sigstore, pub, reference)
