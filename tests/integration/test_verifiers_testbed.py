"""The downstream verifiers of tests/testbed/verifiers.py, each shown both to pass and to refuse.

Real tools on loopback: sid's skopeo (containers/image's sigstoreSigned policy), oras 1.3 and
sigstore-js's CLI (@sigstore/cli), against the test bed's registries and Sigstore. Signatures are
made with cosign itself, as a user makes them, not with provenance-tasks.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from provenance_tasks.sigstore import cosign2_trust_files
from tests.integration.conftest import (
    COSIGNS,
    Registry,
    make_context,
    make_key_pair,
    missing,
    tool_path,
)
from tests.testbed import bed, verifiers
from tests.testbed import sigstore as sigstore_bed

pytestmark = pytest.mark.integration

BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
EMPTY_TYPE = "application/vnd.oci.empty.v1+json"
SLSA_V1 = "https://slsa.dev/provenance/v1"
SIGN_V1 = "https://sigstore.dev/cosign/sign/v1"


def needs(*tools: Path) -> None:
    for tool in tools:
        if not tool.exists():
            missing(f"{tool} is not installed")


def fresh(testbed: bed.TestBed, name: str) -> str:
    return f"{testbed.plain_registry}/verifiers/{name}-{uuid.uuid4().hex[:8]}"


def copy_of(registry: Registry, source: str, repository: str) -> str:
    """source_image under a repository of the test's own (same digests, no referrers yet)."""
    registry.crane("copy", source, f"{repository}:v1")
    return f"{repository}@{registry.digest(f'{repository}:v1')}"


def cosign_(
    binary: str,
    verb: str,
    ref: str,
    registry: Registry,
    folder: Path,
    *flags: str,
    password: str = "",
) -> None:
    """`cosign sign` or `attest`, logging to the test bed's Rekor: the classic format with
    cosign 2, and with cosign 3 unless `flags` name a signing config (then the new bundle)."""
    sigstore = registry.sigstore
    env = {**registry.env(), "COSIGN_PASSWORD": password}
    if binary.endswith("3"):
        trust = ["--trusted-root", str(sigstore.trusted_root)]
        if "--signing-config" not in flags:
            trust += ["--new-bundle-format=false", "--use-signing-config=false"]
            trust += ["--rekor-url", sigstore.url]
    else:
        trust = ["--rekor-url", sigstore.url]
        env.update(cosign2_trust_files(sigstore.trusted_root, folder / "cosign2-trust"))
    argv = [binary, verb, "--yes", *flags, *trust, ref]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def platforms_of(registry: Registry, ref: str) -> dict[tuple[str, str], str]:
    """(os, arch) -> digest of each platform of an index, BuildKit's attestations left out."""
    index = json.loads(registry.crane("manifest", ref))
    return {
        (m["platform"]["os"], m["platform"]["architecture"]): m["digest"]
        for m in index.get("manifests", [])
        if m.get("platform", {}).get("os") != "unknown"
    }


@pytest.fixture
def two_platforms(testbed: bed.TestBed, tmp_path: Path) -> str:
    """A real two-platform FROM-scratch image, pushed by buildx to the plain registry."""
    if testbed.engine == "classic":
        pytest.skip("the classic engine builds one platform into a single manifest")
    ref = f"{fresh(testbed, 'skopeo')}:v1"
    subprocess.run(
        [
            "docker",
            "buildx",
            "build",
            "--push",
            "--platform",
            "linux/amd64,linux/arm64",
            "--tag",
            ref,
            str(make_context(tmp_path / "ctx")),
        ],
        env={**os.environ, **testbed.environ(), "PATH": tool_path()},
        check=True,
        capture_output=True,
        timeout=300,
    )
    return ref


# --- containers/image (skopeo) -------------------------------------------------------------


def test_skopeo_accepts_each_platform_signed_by_the_key_and_refuses_what_is_not(
    registry: Registry, two_platforms: str, cosign: str, tmp_path: Path
) -> None:
    """podman, CRI-O and skopeo pull one platform, and check that platform's own signature."""
    needs(verifiers.SKOPEO)
    key, pub = make_key_pair(cosign, tmp_path / "keys" / "ours", "pw")
    _, other = make_key_pair(cosign, tmp_path / "keys" / "other", "pw")
    platforms = platforms_of(registry, two_platforms)
    assert sorted(platforms) == [("linux", "amd64"), ("linux", "arm64")]

    folders: list[Path] = []

    def check(platform: tuple[str, str], public_key: Path) -> verifiers.Verdict:
        folders.append(tmp_path / f"skopeo-{len(folders)}")
        return verifiers.skopeo_sigstore(
            two_platforms,
            public_key,
            platform=platform,
            folder=folders[-1],
            tls_verify=False,
            creds=None,
            cert_dir=None,
        )

    unsigned = check(("linux", "arm64"), pub)
    assert not unsigned.ok
    assert "A signature was required, but no signature exists" in unsigned.words
    # Its caches are the run's own, as a rootless user's are: root's are in /var/lib/containers.
    assert list(folders[-1].glob("home/data/containers/cache/blob-info-cache-*"))

    # The index signed: no platform is, and containers/image checks the platform it pulls.
    repository = verifiers.repository_of(two_platforms)
    sign = ("--key", str(key))
    cosign_(cosign, "sign", two_platforms, registry, tmp_path, *sign, password="pw")
    assert "no signature exists" in check(("linux", "amd64"), pub).words

    for platform, digest in platforms.items():
        ref = f"{repository}@{digest}"
        cosign_(cosign, "sign", ref, registry, tmp_path, *sign, password="pw")
        assert check(platform, pub) == verifiers.Verdict(True, "")

    refused = check(("linux", "arm64"), other)
    assert not refused.ok
    assert "cryptographic signature verification failed" in refused.words


def test_skopeo_reads_the_tls_registry_with_its_login_and_ca(
    testbed: bed.TestBed, registry: Registry, source_image: str, cosign: str, tmp_path: Path
) -> None:
    needs(verifiers.SKOPEO)
    key, pub = make_key_pair(cosign, tmp_path / "keys" / "ours", "pw")
    repository = f"{testbed.secure_registry}/verifiers/tls-{uuid.uuid4().hex[:8]}"
    ref = copy_of(registry, source_image, repository)
    # What is pulled is the engine's platform, so that is the manifest to sign (or the image
    # itself when it is a single manifest, as the classic engine builds it).
    platform = platforms_of(registry, ref).get(("linux", "amd64"), ref.split("@", 1)[1])
    signed = f"{repository}@{platform}"
    cosign_(cosign, "sign", signed, registry, tmp_path, "--key", str(key), password="pw")
    cert_dir = tmp_path / "certs"
    cert_dir.mkdir()
    shutil.copyfile(testbed.ca_file, cert_dir / "ca.crt")
    creds = (testbed.username, testbed.password)

    def check(name: str, login: tuple[str, str] | None, certs: Path) -> verifiers.Verdict:
        return verifiers.skopeo_sigstore(
            ref,
            pub,
            platform=("linux", "amd64"),
            folder=tmp_path / name,
            tls_verify=True,
            creds=login,
            cert_dir=certs,
        )

    assert check("ok", creds, cert_dir) == verifiers.Verdict(True, "")
    no_login = check("no-login", None, cert_dir)
    assert not no_login.ok and "authentication required" in no_login.words.lower()
    # Without a cert_dir, containers/image reads /etc/docker/certs.d/HOST:PORT as docker does,
    # where the test bed put its CA; a cert_dir is read instead of it, so one without the CA
    # leaves only the system's roots.
    (tmp_path / "no-certs").mkdir()
    no_ca = check("no-ca", creds, tmp_path / "no-certs")
    assert not no_ca.ok and "x509: certificate signed by unknown authority" in no_ca.words


# --- oras ------------------------------------------------------------------------------------


def test_oras_discover_shows_cosign3_bundles_as_the_fallback_index_lists_them(
    testbed: bed.TestBed, registry: Registry, source_image: str, tmp_path: Path
) -> None:
    """distribution 2.8 has no referrers API: cosign 3 puts its bundles in the `sha256-<digest>`
    index, whose descriptors say `application/vnd.oci.empty.v1+json` and carry no annotations
    (cosign#4641), so oras, reading that index, reports exactly that, and a filter by the bundle
    type finds nothing although each manifest is a bundle."""
    needs(verifiers.ORAS, COSIGNS["cosign3"])
    cosign3 = str(COSIGNS["cosign3"])
    repository = fresh(testbed, "oras")
    ref = copy_of(registry, source_image, repository)
    assert verifiers.oras_discover(ref, plain_http=True) == []

    key, _ = make_key_pair(cosign3, tmp_path / "keys" / "ours", "pw")
    predicate = tmp_path / "predicate.json"
    predicate.write_text('{"buildType": "https://example.com/test"}')
    keyed = ["--key", str(key), "--signing-config", str(registry.sigstore.signing_config)]
    cosign_(cosign3, "sign", ref, registry, tmp_path, *keyed, password="pw")
    cosign_(
        cosign3,
        "attest",
        ref,
        registry,
        tmp_path,
        *keyed,
        "--type",
        "slsaprovenance1",
        "--predicate",
        str(predicate),
        password="pw",
    )

    digest = ref.split("@", 1)[1]
    assert f"sha256-{digest.split(':', 1)[1]}" in registry.tags(repository)
    found = verifiers.oras_discover(ref, plain_http=True)
    assert len(found) == 2
    assert [(r["artifactType"], r["annotations"]) for r in found] == [(EMPTY_TYPE, {})] * 2
    assert verifiers.oras_discover(ref, plain_http=True, artifact_type=BUNDLE_TYPE) == []
    assert len(verifiers.oras_discover(ref, plain_http=True, artifact_type=EMPTY_TYPE)) == 2

    # Each referrer itself is a bundle, with its type and predicate in its own manifest.
    kinds = set()
    for referrer in found:
        manifest = json.loads(registry.crane("manifest", f"{repository}@{referrer['digest']}"))
        assert manifest["artifactType"] == BUNDLE_TYPE
        assert manifest["subject"]["digest"] == digest
        kinds.add(manifest["annotations"]["dev.sigstore.bundle.predicateType"])
    assert kinds == {SIGN_V1, SLSA_V1}


def test_oras_discover_says_why_it_cannot_list(testbed: bed.TestBed) -> None:
    needs(verifiers.ORAS)
    ref = f"{fresh(testbed, 'nothing')}@sha256:{'0' * 64}"
    with pytest.raises(RuntimeError, match="not found"):
        verifiers.oras_discover(ref, plain_http=True)


# --- sigstore-js (@sigstore/cli) -------------------------------------------------------------


def predicate_type(bundle: Path) -> str:
    envelope = json.loads(bundle.read_text())["dsseEnvelope"]
    return str(json.loads(base64.b64decode(envelope["payload"]))["predicateType"])


def without_tsa(sigstore: sigstore_bed.Sigstore, folder: Path) -> Path:
    """The test bed's signing config less its TSA. sigstore-js reads an RFC 3161 genTime only
    with 3 decimals ("invalid time"), while DER drops trailing zeros (".8Z"), so it would refuse
    about one timestamp in ten; the log's integrated time is then the signing time."""
    config = json.loads(sigstore.signing_config.read_text())
    config["tsaUrls"] = []
    path = folder / "signing_config-without-tsa.json"
    path.write_text(json.dumps(config))
    return path


@pytest.fixture
def signed_bundles(
    testbed: bed.TestBed, registry: Registry, source_image: str, tmp_path: Path
) -> tuple[str, dict[str, Path], str]:
    """cosign 3 keyless: a signature and an SLSA attestation on a copy of source_image, each
    bundle fetched with oras; returns (digest, {predicate type: bundle}, identity)."""
    needs(verifiers.ORAS, verifiers.SIGSTORE_JS, COSIGNS["cosign3"])
    sigstore = registry.sigstore
    ci = {
        "CI_SERVER_URL": sigstore_bed.GITLAB_ISSUER,
        "CI_PROJECT_PATH": "group/app",
        "CI_COMMIT_REF_NAME": "main",
        "CI_COMMIT_SHA": "a" * 40,
        "CI_PIPELINE_ID": "7",
        "CI_JOB_ID": "8",
    }
    token = tmp_path / "token"
    token.write_text(sigstore.mint(sigstore_bed.gitlab_claims(ci)))
    repository = fresh(testbed, "bundles")
    ref = copy_of(registry, source_image, repository)
    predicate = tmp_path / "predicate.json"
    predicate.write_text('{"buildType": "https://example.com/test"}')
    keyless = [
        "--identity-token",
        str(token),
        "--signing-config",
        str(without_tsa(sigstore, tmp_path)),
    ]
    cosign3 = str(COSIGNS["cosign3"])
    cosign_(cosign3, "sign", ref, registry, tmp_path, *keyless)
    cosign_(
        cosign3,
        "attest",
        ref,
        registry,
        tmp_path,
        *keyless,
        "--type",
        "slsaprovenance1",
        "--predicate",
        str(predicate),
    )
    bundles = {}
    for referrer in verifiers.oras_discover(ref, plain_http=True):
        path = tmp_path / "bundles" / f"{referrer['digest'].split(':')[1]}.json"
        verifiers.fetch_bundle(repository, referrer["digest"], path, plain_http=True)
        bundles[predicate_type(path)] = path
    identity = f"https://{sigstore_bed.gitlab_claims(ci)['ci_config_ref_uri']}"
    return ref.split("@", 1)[1], bundles, identity


@pytest.mark.parametrize("kind", [SIGN_V1, SLSA_V1], ids=["signature", "attestation"])
def test_sigstore_js_verifies_cosign3_keyless_bundles(
    signed_bundles: tuple[str, dict[str, Path], str], registry: Registry, tmp_path: Path, kind: str
) -> None:
    digest, bundles, identity = signed_bundles
    trust = verifiers.sigstore_js_trust(registry.sigstore.trusted_root, tmp_path / "tuf")
    verdict = verifiers.bundle_verify(
        bundles[kind], digest, trust=trust, identity=identity, issuer=sigstore_bed.GITLAB_ISSUER
    )
    assert verdict == verifiers.Verdict(True, "")


def test_sigstore_js_refuses_another_identity_or_digest(
    signed_bundles: tuple[str, dict[str, Path], str], registry: Registry, tmp_path: Path
) -> None:
    digest, bundles, identity = signed_bundles
    trust = verifiers.sigstore_js_trust(registry.sigstore.trusted_root, tmp_path / "tuf")
    issuer = sigstore_bed.GITLAB_ISSUER
    stranger = verifiers.bundle_verify(
        bundles[SIGN_V1], digest, trust=trust, identity=identity + "x", issuer=issuer
    )
    assert not stranger.ok
    assert "UNTRUSTED_SIGNER_ERROR" in stranger.words
    elsewhere = verifiers.bundle_verify(
        bundles[SLSA_V1], f"sha256:{'0' * 64}", trust=trust, identity=identity, issuer=issuer
    )
    assert not elsewhere.ok
    assert f"not sha256:{'0' * 64}" in elsewhere.words


def test_sigstore_js_takes_no_public_key_so_a_key_signed_bundle_is_refused(
    testbed: bed.TestBed, registry: Registry, source_image: str, tmp_path: Path
) -> None:
    needs(verifiers.ORAS, verifiers.SIGSTORE_JS, COSIGNS["cosign3"])
    cosign3 = str(COSIGNS["cosign3"])
    key, _ = make_key_pair(cosign3, tmp_path / "keys" / "ours", "pw")
    repository = fresh(testbed, "keyed")
    ref = copy_of(registry, source_image, repository)
    keyed = ["--key", str(key), "--signing-config", str(without_tsa(registry.sigstore, tmp_path))]
    cosign_(cosign3, "sign", ref, registry, tmp_path, *keyed, password="pw")
    (referrer,) = verifiers.oras_discover(ref, plain_http=True)
    bundle = verifiers.fetch_bundle(
        repository, referrer["digest"], tmp_path / "bundle.json", plain_http=True
    )
    trust = verifiers.sigstore_js_trust(registry.sigstore.trusted_root, tmp_path / "tuf")
    verdict = verifiers.bundle_verify(bundle, ref.split("@", 1)[1], trust=trust)
    assert not verdict.ok
    assert "PUBLIC_KEY_ERROR" in verdict.words and "key not found" in verdict.words
