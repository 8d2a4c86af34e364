"""The openssl CLI and DER, as the test PKI (pki.py) uses them: argv lists, never a shell, and
values that come from callers written as DER rather than as openssl config text.
"""

from __future__ import annotations

import fcntl
import hashlib
import ipaddress
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

from provenance_tasks.errors import ToolError

#: The openssl binary; a module constant so a laptop with several can point at the right one.
OPENSSL = "openssl"


def genkey(path: Path, *, cwd: Path) -> None:
    """An EC P-256 private key, PKCS#8 PEM, mode 0600 (openssl's own; chmod makes sure)."""
    curve = ["-pkeyopt", "ec_paramgen_curve:P-256", "-pkeyopt", "ec_param_enc:named_curve"]
    openssl("genpkey", "-algorithm", "EC", *curve, "-out", path, cwd=cwd)
    path.chmod(0o600)


def asn1_time(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H%M%SZ")  # GeneralizedTime; openssl stores UTCTime < 2050


def openssl(*args: str | Path, cwd: Path | None = None) -> str:
    return run([OPENSSL, *(str(a) for a in args)], cwd=cwd)


def run(
    argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> str:
    tool = Path(argv[0]).name
    try:
        done = subprocess.run(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    except FileNotFoundError as exc:
        raise ToolError(f"{tool} not found", hint=f"install {tool} or put it on PATH") from exc
    if done.returncode != 0:
        last = "\n".join(done.stderr.strip().splitlines()[-8:])
        raise ToolError(f"{tool} failed (exit {done.returncode}): {' '.join(argv)}\n{last}")
    return done.stdout


def fingerprint(cert: Path) -> str:
    """SHA-256 of the file: ties a leaf's record to the exact CA certificate that issued it."""
    return hashlib.sha256(cert.read_bytes()).hexdigest()


def valid_for(cert: Path, remaining: timedelta) -> bool:
    """Whether cert is still valid `remaining` from now (openssl -checkend exits 1 if not)."""
    seconds = str(int(remaining.total_seconds()))
    done = subprocess.run(
        [OPENSSL, "x509", "-in", str(cert), "-noout", "-checkend", seconds],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


def same_public_key(cert: Path, key: Path) -> bool:
    try:
        from_cert = openssl("x509", "-in", cert, "-noout", "-pubkey")
        from_key = openssl("pkey", "-in", key, "-pubout")
    except ToolError:
        return False
    return from_cert.strip() == from_key.strip()


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """An exclusive lock on folder/.pki.lock: parallel test workers never mix keys and certs."""
    with open(folder / ".pki.lock", "a+b") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextmanager
def workdir(folder: Path) -> Iterator[Path]:
    """A private (0700) scratch folder next to the results, so os.replace stays on one device."""
    work = Path(tempfile.mkdtemp(dir=folder.resolve(), prefix=".pki-work-"))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def unique(items: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if not item:
            raise ValueError("empty host name")
        if item not in seen:
            seen.append(item)
    return seen


def der(tag: int, content: bytes) -> bytes:
    """One DER TLV (definite length)."""
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


def ia5(text: str) -> bytes:
    try:
        return text.encode("ascii")
    except UnicodeEncodeError as exc:
        raise ValueError(f"not ASCII, cannot go into a SAN: {text!r}") from exc


def general_names(hosts: Sequence[str]) -> bytes:
    """GeneralNames for a SAN: iPAddress [7] for IP literals, dNSName [2] for the rest."""
    names = b""
    for host in hosts:
        try:
            names += der(0x87, ipaddress.ip_address(host).packed)
        except ValueError:
            names += der(0x82, ia5(host))
    return der(0x30, names)


#: The openssl config `issue` writes; extensions come in as `{extensions}`.
CONFIG = """\
[ ca ]
default_ca = testbed_ca
[ testbed_ca ]
database = index.txt
serial = serial
new_certs_dir = .
default_md = sha256
policy = testbed_policy
unique_subject = no
email_in_dn = no
copy_extensions = none
[ testbed_policy ]
commonName = optional
[ req ]
distinguished_name = req_dn
prompt = no
[ req_dn ]
CN = unused
[ exts ]
{extensions}
"""


def issue(
    work: Path,
    key: Path,
    cert: Path,
    *,
    subject: str,
    extensions: Mapping[str, str],
    signer: tuple[Path, Path] | None,
    validity: timedelta,
    backdate: timedelta,
) -> None:
    """Make key (EC P-256) and cert in work: self-signed when signer
    (a CA's certificate and key) is None, else by it.

    Backdated by `backdate`. The extension values are constants or `DER:<hex>` built here, so the
    config file never holds caller text that openssl could misparse.
    """
    body = "\n".join(f"{oid} = {value}" for oid, value in extensions.items())
    (work / "openssl.cnf").write_text(CONFIG.format(extensions=body))
    (work / "index.txt").write_text("")
    csr = work / f"{cert.stem}.csr"
    genkey(key, cwd=work)
    request: list[str | Path] = ["req", "-new", "-utf8", "-config", "openssl.cnf", "-key", key]
    request += ["-subj", subject]
    openssl(*request, "-out", csr, cwd=work)
    now = datetime.now(UTC).replace(microsecond=0)
    dates = ["-startdate", asn1_time(now - backdate), "-enddate", asn1_time(now + validity)]
    signing: list[str | Path] = ["-selfsign", "-keyfile", key]
    if signer is not None:
        signing = ["-cert", signer[0].resolve(), "-keyfile", signer[1].resolve()]
    batch = ["ca", "-batch", "-notext", "-rand_serial", "-config", "openssl.cnf"]
    openssl(*batch, "-extensions", "exts", *signing, *dates, "-in", csr, "-out", cert, cwd=work)
