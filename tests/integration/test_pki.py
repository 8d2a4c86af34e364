"""The test PKI against real cosign 2.x and 3.x: identity mode (the offline stand-in for keyless
signing) signs and verifies, and a wrong identity, issuer or annotation is rejected.

These are contract tests of cosign itself: the flags the adapter relies on, per major. Each test
signs a crane copy of the session's source image, in a repository of its own on the test bed's
plain registry, so signatures never leak between tests. Missing tools skip the tests with
the reason, except under CI=true, where they fail: CI must never pass by skipping.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.testbed import pki
from tests.testbed.bed import TestBed

pytestmark = pytest.mark.integration

TOOLS_BIN = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools")) / "bin"

IDENTITY = "https://gitlab.example.com/group/project//.gitlab-ci.yml@refs/heads/main"
ISSUER = "https://gitlab.example.com"
OTHER_ISSUER = "https://token.actions.githubusercontent.com"

# classic identity mode: no Rekor upload; cosign 3 also needs the TUF signing config off and the
# classic format asked for (its default is the new bundle format)
CLASSIC_SIGN_FLAGS = {
    2: ["--tlog-upload=false"],
    3: ["--tlog-upload=false", "--use-signing-config=false", "--new-bundle-format=false"],
}
# cosign 3 verify reads new bundles when the image has any and falls back to classic only when it
# has none, so a classic verification says so
CLASSIC_VERIFY_FLAGS = {2: [], 3: ["--new-bundle-format=false"]}
OFFLINE_VERIFY_FLAGS = ["--insecure-ignore-tlog", "--insecure-ignore-sct"]


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true: integration prerequisites must be present)")
    pytest.skip(reason)


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidate = TOOLS_BIN / name
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    _unavailable(f"{name} not found on PATH or in {TOOLS_BIN} (see ci/install-tools)")


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


def _run(argv: Sequence[str], env: dict[str, str]) -> Run:
    done = subprocess.run(
        list(argv),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Run(done.returncode, done.stdout, done.stderr)


def _ok(run: Run, what: str) -> Run:
    assert run.returncode == 0, f"{what} failed (exit {run.returncode}):\n{run.stderr}"
    return run


# --- fixtures ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cosigns() -> dict[int, str]:
    return {2: _tool("cosign2"), 3: _tool("cosign3")}


@pytest.fixture(scope="module")
def crane() -> str:
    return _tool("crane")


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> pki.CertificateAuthority:
    pki.OPENSSL = _tool("openssl")
    return pki.make_ca(tmp_path_factory.mktemp("pki"), "provenance-tasks test CA")


@pytest.fixture(scope="module")
def signer(ca: pki.CertificateAuthority, cosigns: dict[int, str]) -> pki.SigningCert:
    # cosign 3 imports the key: cosign 2.5 rejects EC keys in import-key-pair
    return pki.issue_signing_cert(
        ca,
        ca.folder / "signer",
        identity_uri=IDENTITY,
        issuer=ISSUER,
        name="signer",
        cosign=cosigns[3],
    )


@pytest.fixture(scope="module")
def trusted_root(ca: pki.CertificateAuthority, cosigns: dict[int, str]) -> Path:
    return pki.make_trusted_root(cosigns[3], ca, ca.folder)


@pytest.fixture
def env(tmp_path: Path, signer: pki.SigningCert) -> dict[str, str]:
    """cosign's environment: the key's empty password, and a TUF cache of the test's own."""
    environment = signer.cosign_env()
    environment["TUF_ROOT"] = str(tmp_path / "tuf")
    return environment


@pytest.fixture
def image(crane: str, source_image: str, testbed: TestBed) -> Iterator[str]:
    """A fresh copy of the source image in a repository of its own, by digest."""
    repository = f"{testbed.plain_registry}/pki-tests/{uuid.uuid4().hex[:12]}"
    copy = subprocess.run(
        [crane, "copy", source_image, f"{repository}:v1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert copy.returncode == 0, copy.stderr
    digest = subprocess.run(
        [crane, "digest", f"{repository}:v1"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    yield f"{repository}@{digest}"


# --- helpers -------------------------------------------------------------------------------------


def _sign_classic(
    cosign: str,
    major: int,
    signer: pki.SigningCert,
    image: str,
    env: dict[str, str],
    annotations: Sequence[str] = ("k=v",),
) -> Run:
    argv = [
        cosign,
        "sign",
        "--yes",
        "--key",
        str(signer.cosign_key),
        "--certificate",
        str(signer.cert),
        "--certificate-chain",
        str(signer.chain),
        *CLASSIC_SIGN_FLAGS[major],
    ]
    for annotation in annotations:
        argv += ["-a", annotation]
    return _run([*argv, image], env)


def _verify_classic(
    cosign: str,
    major: int,
    signer: pki.SigningCert,
    image: str,
    env: dict[str, str],
    *,
    identity: str = IDENTITY,
    issuer: str = ISSUER,
    annotations: Sequence[str] = (),
) -> Run:
    argv = [
        cosign,
        "verify",
        "--certificate-identity",
        identity,
        "--certificate-oidc-issuer",
        issuer,
        "--certificate-chain",
        str(signer.chain),
        *OFFLINE_VERIFY_FLAGS,
        *CLASSIC_VERIFY_FLAGS[major],
    ]
    for annotation in annotations:
        argv += ["-a", annotation]
    return _run([*argv, image], env)


# --- the certificate itself ----------------------------------------------------------------------


def test_signing_cert_has_the_fulcio_shape(signer: pki.SigningCert) -> None:
    text = subprocess.run(
        ["openssl", "x509", "-in", str(signer.cert), "-noout", "-text"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert f"URI:{IDENTITY}" in text
    assert "Code Signing" in text
    assert "X509v3 Key Usage: critical" in text
    assert "1.3.6.1.4.1.57264.1.1:" in text
    assert "1.3.6.1.4.1.57264.1.8:" in text
    der = subprocess.run(
        ["openssl", "x509", "-in", str(signer.cert), "-outform", "DER"],
        capture_output=True,
        check=True,
    ).stdout
    raw = ISSUER.encode()
    # 1.1: an OCTET STRING holding the raw issuer bytes; 1.8: holding a UTF8String of them
    assert bytes([0x04, len(raw)]) + raw in der
    assert bytes([0x04, len(raw) + 2, 0x0C, len(raw)]) + raw in der
    assert signer.private_key_pem.stat().st_mode & 0o777 == 0o600
    assert signer.cosign_key.read_text().startswith("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY")


def test_pki_is_idempotent(tmp_path: Path, cosigns: dict[int, str]) -> None:
    first = pki.make_ca(tmp_path, "again")
    cert, key = first.cert.read_bytes(), first.key.read_bytes()
    assert pki.make_ca(tmp_path, "again").cert.read_bytes() == cert
    assert first.key.read_bytes() == key
    assert first.key.stat().st_mode & 0o777 == 0o600
    tls = pki.issue_tls_server_cert(first, tmp_path, ["registry.test"])
    assert tls.hosts == ("127.0.0.1", "localhost", "registry.test")
    served = tls.cert.read_bytes()
    assert pki.issue_tls_server_cert(first, tmp_path, ["registry.test"]).cert.read_bytes() == served
    assert pki.issue_tls_server_cert(first, tmp_path, ["other.test"]).cert.read_bytes() != served
    one = pki.issue_signing_cert(
        first, tmp_path / "s", identity_uri=IDENTITY, issuer=ISSUER, name="ci", cosign=cosigns[3]
    )
    again = pki.issue_signing_cert(
        first, tmp_path / "s", identity_uri=IDENTITY, issuer=ISSUER, name="ci", cosign=cosigns[3]
    )
    assert one == again and one.cert.read_bytes() == again.cert.read_bytes()


# --- identity mode, classic signatures, both majors ----------------------------------------------


@pytest.mark.parametrize("major", [2, 3])
def test_identity_mode_classic_signs_and_verifies(
    major: int, cosigns: dict[int, str], signer: pki.SigningCert, image: str, env: dict[str, str]
) -> None:
    cosign = cosigns[major]
    _ok(_sign_classic(cosign, major, signer, image, env), f"cosign{major} sign")
    verified = _ok(
        _verify_classic(cosign, major, signer, image, env, annotations=["k=v"]),
        f"cosign{major} verify",
    ).json()
    assert len(verified) == 1
    claim = verified[0]
    assert claim["critical"]["type"] == "cosign container image signature"
    assert claim["critical"]["image"]["docker-manifest-digest"] == image.split("@", 1)[1]
    assert claim["optional"]["Subject"] == IDENTITY
    assert claim["optional"]["Issuer"] == ISSUER
    assert claim["optional"]["k"] == "v"


@pytest.mark.parametrize("major", [2, 3])
def test_identity_mode_classic_rejects_wrong_identity_issuer_and_annotation(
    major: int, cosigns: dict[int, str], signer: pki.SigningCert, image: str, env: dict[str, str]
) -> None:
    cosign = cosigns[major]
    _ok(_sign_classic(cosign, major, signer, image, env), f"cosign{major} sign")

    wrong_identity = _verify_classic(
        cosign, major, signer, image, env, identity=IDENTITY.replace("main", "feature")
    )
    assert wrong_identity.returncode != 0
    assert "none of the expected identities matched" in wrong_identity.stderr

    wrong_issuer = _verify_classic(cosign, major, signer, image, env, issuer=OTHER_ISSUER)
    assert wrong_issuer.returncode != 0
    assert "none of the expected identities matched" in wrong_issuer.stderr

    wrong_annotation = _verify_classic(cosign, major, signer, image, env, annotations=["k=w"])
    assert wrong_annotation.returncode != 0
    assert "missing or incorrect annotation" in wrong_annotation.stderr


@pytest.mark.parametrize(("signs", "verifies"), [(2, 3), (3, 2)])
def test_classic_signatures_cross_majors(
    signs: int,
    verifies: int,
    cosigns: dict[int, str],
    signer: pki.SigningCert,
    image: str,
    env: dict[str, str],
) -> None:
    _ok(_sign_classic(cosigns[signs], signs, signer, image, env), f"cosign{signs} sign")
    verified = _ok(
        _verify_classic(cosigns[verifies], verifies, signer, image, env, annotations=["k=v"]),
        f"cosign{verifies} verify",
    )
    payloads = verified.json()
    assert any(p["optional"].get("Subject") == signer.identity for p in payloads), payloads
    assert all(
        p["critical"]["image"]["docker-manifest-digest"] == image.split("@")[1] for p in payloads
    )


# --- identity mode, cosign 3 new bundle format ----------------------------------------------------


def test_identity_mode_new_bundle_signs_and_verifies_with_trusted_root(
    tmp_path: Path,
    cosigns: dict[int, str],
    signer: pki.SigningCert,
    trusted_root: Path,
    image: str,
    env: dict[str, str],
) -> None:
    cosign = cosigns[3]
    # the non-deprecated way offline: a signing config without Rekor or TSA; --trusted-root makes
    # sign check the leaf against the test CA before pushing (and keeps it away from TUF)
    signing_config = tmp_path / "signing_config.json"
    _ok(
        _run([cosign, "signing-config", "create", "--out", str(signing_config)], env),
        "signing-config create",
    )
    _ok(
        _run(
            [
                cosign,
                "sign",
                "--yes",
                "--key",
                str(signer.cosign_key),
                "--certificate",
                str(signer.cert),
                "--signing-config",
                str(signing_config),
                "--trusted-root",
                str(trusted_root),
                "-a",
                "foo=bar",
                image,
            ],
            env,
        ),
        "cosign3 sign (new bundle)",
    )

    def verify(*extra: str) -> Run:
        return _run(
            [
                cosign,
                "verify",
                "--trusted-root",
                str(trusted_root),
                *OFFLINE_VERIFY_FLAGS,
                *extra,
                image,
            ],
            env,
        )

    verified = _ok(
        verify(
            "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER, "-a", "foo=bar"
        ),
        "cosign3 verify (new bundle)",
    ).json()
    assert len(verified) == 1
    claim = verified[0]
    assert claim["critical"]["type"] == "https://sigstore.dev/cosign/sign/v1"
    assert claim["critical"]["image"]["docker-manifest-digest"] == image.split("@", 1)[1]
    # new bundles carry no Subject/Issuer in the output: only the signed annotations
    assert claim["optional"] == {"foo": "bar"}

    wrong_annotation = verify(
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", ISSUER, "-a", "foo=baz"
    )
    assert wrong_annotation.returncode != 0
    assert "missing or incorrect annotation" in wrong_annotation.stderr

    wrong_identity = verify(
        "--certificate-identity", IDENTITY + "x", "--certificate-oidc-issuer", ISSUER
    )
    assert wrong_identity.returncode != 0
    assert "expected SAN value" in wrong_identity.stderr

    wrong_issuer = verify(
        "--certificate-identity", IDENTITY, "--certificate-oidc-issuer", OTHER_ISSUER
    )
    assert wrong_issuer.returncode != 0
    assert "expected issuer value" in wrong_issuer.stderr

    # the classic reader does not see new bundles
    classic_only = _verify_classic(cosign, 3, signer, image, env)
    assert classic_only.returncode != 0
    assert "no signatures found" in classic_only.stderr
