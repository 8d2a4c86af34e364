"""A throwaway test PKI, made with the `openssl` CLI: a CA, TLS server certificates and signing
certificates shaped like Sigstore Fulcio's keyless ones.

Why it exists: keyless signing needs Fulcio, Rekor and an OIDC provider on the internet. Tests and
laptops run offline, so "identity mode" stands in for it: cosign signs with a key *and* a
certificate that carries the CI identity (URI SAN) and OIDC issuer (Fulcio extensions), chained
to this test CA. `cosign verify --certificate-identity ... --certificate-oidc-issuer ...` then
checks exactly what it would check on a Fulcio certificate. The same CA signs the TLS certificate
of the test registry, so the TLS code paths are exercised too.

Why the openssl CLI and not a Python library: no new dependency, and openssl is on every machine
the test bed runs on. Every call is an argv list (never a shell string). Values that come from
callers (identities, issuers, host names) never go into an openssl config file as text: the
extensions are written as DER built here (`DER:<hex>`), so no character needs escaping.

Every function is idempotent and safe to call from several processes at once on the same folder
(an exclusive lock on `folder/.pki.lock`): it reuses what is on disk when it still fits and writes
new files atomically (temporary file, then rename) otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from tests.testbed.openssl import (
    der,
    fingerprint,
    general_names,
    ia5,
    issue,
    locked,
    run,
    same_public_key,
    unique,
    valid_for,
    workdir,
)

#: Where Debian/Ubuntu keep the system roots (one PEM bundle).
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

#: Fulcio's OID arc (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md).
FULCIO_ISSUER_V1_OID = "1.3.6.1.4.1.57264.1.1"  # raw issuer bytes (deprecated, still read)
FULCIO_ISSUER_V2_OID = "1.3.6.1.4.1.57264.1.8"  # DER UTF8String of the issuer

#: Certificates are backdated by this much so that a clock a little behind, or cosign comparing
#: the signature time with the validity window, never sees a certificate "from the future".
BACKDATE = timedelta(minutes=5)
CA_VALIDITY = timedelta(days=3650)
TLS_VALIDITY = timedelta(days=365)
SIGNING_VALIDITY = timedelta(days=1)
#: A certificate on disk is reused only while it stays valid for at least this long, so a test
#: run never starts with a certificate that expires half way through.
MIN_REMAINING = timedelta(hours=1)

#: The URL a trusted root names for the test CA. Nothing ever connects to it (`.invalid` cannot
#: resolve); cosign only needs a syntactically valid URL next to the certificate chain.
TEST_FULCIO_URL = "https://fulcio.testbed.invalid"

_RESERVED_NAMES = frozenset({"ca", "server", "trusted_root", "bundle"})


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed test CA. `cert` is what clients trust; `key` (mode 0600) issues leaves."""

    name: str
    folder: Path
    cert: Path  # folder/ca.crt
    key: Path  # folder/ca.key


@dataclass(frozen=True)
class TLSCert:
    """A TLS server certificate for a registry on loopback, issued by `ca_cert`."""

    cert: Path  # folder/server.crt (the leaf only; clients trust the CA)
    key: Path  # folder/server.key, mode 0600
    ca_cert: Path
    hosts: tuple[str, ...]  # every SAN: 127.0.0.1, localhost, then the caller's hosts


@dataclass(frozen=True)
class SigningCert:
    """A Fulcio-shaped signing certificate and its key in the forms cosign wants.

    cosign signs with `--key cosign_key --certificate cert --certificate-chain chain` and needs
    COSIGN_PASSWORD in its environment (see `cosign_env`); verifiers pass `identity` and `issuer`
    to `--certificate-identity` and `--certificate-oidc-issuer`.
    """

    name: str
    identity: str  # the URI SAN
    issuer: str  # the OIDC issuer in the Fulcio extensions
    cert: Path  # folder/<name>.crt
    private_key_pem: Path  # folder/<name>.pem-key: the plain PEM private key, mode 0600
    cosign_key: Path  # folder/<name>.key: cosign's encrypted key, from `cosign import-key-pair`
    cosign_pub: Path  # folder/<name>.pub
    chain: Path  # folder/<name>.chain.crt: the CA certificate, for --certificate-chain
    password: str = field(default="", repr=False)  # COSIGN_PASSWORD of cosign_key

    def cosign_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment for cosign: `base` (default os.environ) plus COSIGN_PASSWORD."""
        env = dict(os.environ if base is None else base)
        env["COSIGN_PASSWORD"] = self.password
        return env


# --- public API --------------------------------------------------------------------------------


def make_ca(folder: Path, name: str) -> CertificateAuthority:
    """Create a self-signed EC P-256 CA in folder (ca.crt, ca.key), or reuse the one there.

    Reused as long as both files exist, the key matches the certificate and the certificate stays
    valid for MIN_REMAINING: everything issued earlier (and trusted by docker's certs.d or a
    bundle) keeps working across runs. `name` is the common name of a new CA; a reused CA keeps
    the one it was made with.
    """
    folder.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(
        name=name, folder=folder, cert=folder / "ca.crt", key=folder / "ca.key"
    )
    with locked(folder):
        if _ca_reusable(ca):
            return ca
        with workdir(folder) as work:
            key, cert = work / "ca.key", work / "ca.crt"
            issue(
                work,
                key,
                cert,
                subject=_subject(name),
                extensions=_CA_EXTENSIONS,
                signer=None,
                validity=CA_VALIDITY,
                backdate=BACKDATE,
            )
            # key first: a reader that sees the new certificate also finds its key
            os.replace(key, ca.key)
            os.replace(cert, ca.cert)
    return ca


def issue_tls_server_cert(ca: CertificateAuthority, folder: Path, hosts: list[str]) -> TLSCert:
    """Issue folder/server.crt and server.key for a registry on loopback, or reuse them.

    SANs are IP:127.0.0.1, DNS:localhost and `hosts` (IP addresses become IP SANs, the rest DNS
    SANs), with the serverAuth extended key usage that Go's TLS client insists on. Reused while
    issued by this CA for the same SANs and valid for MIN_REMAINING.
    """
    sans = unique(["127.0.0.1", "localhost", *hosts])
    folder.mkdir(parents=True, exist_ok=True)
    result = TLSCert(
        cert=folder / "server.crt", key=folder / "server.key", ca_cert=ca.cert, hosts=tuple(sans)
    )
    request = {"kind": "tls-server", "ca": fingerprint(ca.cert), "hosts": sans}
    record = folder / "server.json"
    with locked(folder):
        if _leaf_reusable(record, request, (result.cert, result.key)):
            return result
        extensions = {
            "basicConstraints": "critical, CA:FALSE",
            "keyUsage": "critical, digitalSignature",
            "extendedKeyUsage": "serverAuth",
            "subjectKeyIdentifier": "hash",
            "authorityKeyIdentifier": "keyid:always",
            "subjectAltName": "critical, DER:" + general_names(sans).hex(),
        }
        with workdir(folder) as work:
            key, cert = work / "server.key", work / "server.crt"
            issue(
                work,
                key,
                cert,
                subject=_subject(sans[0]),
                extensions=extensions,
                signer=(ca.cert, ca.key),
                validity=TLS_VALIDITY,
                backdate=BACKDATE,
            )
            record.unlink(missing_ok=True)  # an interrupted replace must not look complete
            os.replace(key, result.key)
            os.replace(cert, result.cert)
            _write_record(record, request)
    return result


def issue_signing_cert(
    ca: CertificateAuthority,
    folder: Path,
    *,
    identity_uri: str,
    issuer: str,
    name: str = "signer",
    cosign: str = "cosign",
) -> SigningCert:
    """Issue a Fulcio-shaped signing certificate for `identity_uri` from `issuer`, or reuse it.

    The shape is what `cosign verify --certificate-identity/--certificate-oidc-issuer` checks on a
    real keyless certificate: an EC P-256 key; an empty subject with a critical URI SAN (the
    identity); keyUsage digitalSignature (critical); extendedKeyUsage codeSigning; and the issuer
    twice, as Fulcio writes it: OID 1.3.6.1.4.1.57264.1.1 with the raw issuer bytes (not DER
    wrapped: the deprecated v1 form) and 1.3.6.1.4.1.57264.1.8 as a DER UTF8String (v2). It is
    backdated by BACKDATE and valid for SIGNING_VALIDITY: without a transparency log cosign checks
    the certificate's validity at verification time.

    Writes <name>.crt, <name>.pem-key, <name>.chain.crt (the CA) and the cosign key pair
    <name>.key / <name>.pub made by `cosign import-key-pair` with an empty password. `cosign` is
    the binary for that import: cosign 3.x. cosign 2.5 (Debian's build) rejects every EC key with
    "error validating ecdsa key: unsupported public key type"; the key it would have written is
    the same format either major reads, so cosign 2.x signs with a pair that cosign 3 imported.
    """
    if name in _RESERVED_NAMES or not name or "/" in name or name.startswith("."):
        raise ValueError(f"signing certificate name {name!r} would clash with other PKI files")
    ia5(identity_uri)  # fail early on a non-ASCII identity
    folder.mkdir(parents=True, exist_ok=True)
    result = SigningCert(
        name=name,
        identity=identity_uri,
        issuer=issuer,
        cert=folder / f"{name}.crt",
        private_key_pem=folder / f"{name}.pem-key",
        cosign_key=folder / f"{name}.key",
        cosign_pub=folder / f"{name}.pub",
        chain=folder / f"{name}.chain.crt",
    )
    ca_fingerprint = fingerprint(ca.cert)
    request = {"kind": "signing", "ca": ca_fingerprint, "identity": identity_uri, "issuer": issuer}
    record = folder / f"{name}.json"
    files = (
        result.cert,
        result.private_key_pem,
        result.cosign_key,
        result.cosign_pub,
        result.chain,
    )
    with locked(folder):
        if _leaf_reusable(record, request, files) and fingerprint(result.chain) == ca_fingerprint:
            return result
        issuer_bytes = issuer.encode("utf-8")
        extensions = {
            "basicConstraints": "critical, CA:FALSE",
            "keyUsage": "critical, digitalSignature",
            "extendedKeyUsage": "codeSigning",
            "subjectKeyIdentifier": "hash",
            "authorityKeyIdentifier": "keyid:always",
            "subjectAltName": "critical, DER:" + der(0x30, der(0x86, ia5(identity_uri))).hex(),
            FULCIO_ISSUER_V1_OID: "DER:" + issuer_bytes.hex(),
            FULCIO_ISSUER_V2_OID: "DER:" + der(0x0C, issuer_bytes).hex(),
        }
        with workdir(folder) as work:
            pem, cert = work / f"{name}.pem-key", work / f"{name}.crt"
            # Fulcio leaves have an empty subject: the identity lives in the SAN only
            issue(
                work,
                pem,
                cert,
                subject="/",
                extensions=extensions,
                signer=(ca.cert, ca.key),
                validity=SIGNING_VALIDITY,
                backdate=BACKDATE,
            )
            importing = ["import-key-pair", "--yes", "--key", str(pem), "--output-key-prefix", name]
            run([cosign, *importing], cwd=work, env=result.cosign_env())
            chain = work / f"{name}.chain.crt"
            shutil.copyfile(ca.cert, chain)
            record.unlink(missing_ok=True)
            for made, final in zip(
                (pem, work / f"{name}.key", work / f"{name}.pub", chain, cert),
                (
                    result.private_key_pem,
                    result.cosign_key,
                    result.cosign_pub,
                    result.chain,
                    result.cert,
                ),
                strict=True,
            ):
                os.replace(made, final)
            _write_record(record, request)
    return result


def make_trusted_root(cosign: str, ca: CertificateAuthority, folder: Path) -> Path:
    """Write folder/trusted_root.json naming the test CA as the (only) Fulcio, for cosign 3.x.

    cosign 3's new bundle format verifies against a Sigstore TrustedRoot instead of
    --certificate-chain. Made with `cosign trusted-root create --fulcio url=...,certificate-chain=
    ca.crt`: without --with-default-services it holds no Rekor, CT log or TSA, so verification
    also needs --insecure-ignore-tlog and --insecure-ignore-sct. Rewritten on every call (cheap).
    """
    if any(c in str(ca.cert) for c in ",="):
        raise ValueError(f"cosign cannot read a --fulcio path with ',' or '=': {ca.cert}")
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / "trusted_root.json"
    with locked(folder), workdir(folder) as work:
        made = work / "trusted_root.json"
        fulcio = f"url={TEST_FULCIO_URL},certificate-chain={ca.cert.resolve()}"
        run([cosign, "trusted-root", "create", "--fulcio", fulcio, "--out", str(made)])
        made.chmod(0o644)  # public material; cosign writes it 0600
        os.replace(made, out)
    return out


def ca_bundle_with_system(ca: CertificateAuthority, dest: Path) -> Path:
    """Write dest: the system roots (if any) followed by the test CA; returns dest.

    For SSL_CERT_FILE: Go programs (cosign, buildx, crane) read only that file when it is set, so
    it must keep the public roots as well as trust the test registry's CA.
    """
    parts: list[bytes] = []
    if SYSTEM_CA_BUNDLE.is_file():
        parts.append(SYSTEM_CA_BUNDLE.read_bytes())
    parts.append(ca.cert.read_bytes())
    data = b"".join(p if p.endswith(b"\n") else p + b"\n" for p in parts)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with locked(dest.parent):
        if dest.is_file() and dest.read_bytes() == data:
            return dest
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a bundle is public
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return dest


# --- openssl -------------------------------------------------------------------------------------

_CA_EXTENSIONS = {
    "basicConstraints": "critical, CA:TRUE",
    "keyUsage": "critical, keyCertSign, cRLSign",
    "subjectKeyIdentifier": "hash",
}

# `openssl ca` rather than `openssl x509 -req`: in OpenSSL 3.0 only `ca` can set a notBefore in
# the past (-startdate). Its database is a throwaway in the work folder, named relative to it
# (openssl runs there), so no path ever needs quoting in the config; serials are random.


def _ca_reusable(ca: CertificateAuthority) -> bool:
    return (
        ca.cert.is_file()
        and ca.key.is_file()
        and valid_for(ca.cert, MIN_REMAINING)
        and same_public_key(ca.cert, ca.key)
    )


def _leaf_reusable(record: Path, request: Mapping[str, object], files: Sequence[Path]) -> bool:
    """A leaf is reused when its record (written last) matches the request and it stays valid."""
    try:
        recorded = json.loads(record.read_text())
    except (FileNotFoundError, ValueError):
        return False
    return (
        recorded == request
        and all(f.is_file() for f in files)
        and valid_for(files[0], MIN_REMAINING)
    )


def _write_record(record: Path, request: Mapping[str, object]) -> None:
    tmp = record.with_name(f".{record.name}.tmp")
    tmp.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, record)


# --- subjects and DER --------------------------------------------------------------------------


def _subject(common_name: str) -> str:
    """A subject of just a common name, in openssl's -subj syntax (/type=value/...)."""
    escaped = "".join("\\" + c if c in "\\/=+" else c for c in common_name)
    return "/CN=" + escaped
