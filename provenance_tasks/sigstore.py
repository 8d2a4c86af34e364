"""Which Sigstore a run signs with and trusts: the public instance, or a private one of your own.

A private Sigstore (self-managed GitLab, air-gapped sites, our own test bed) is described by its
service URLs (`fulcio_url`, `rekor_url`, `tsa_url`), or by a `signing_config.json` naming them,
and always by a `trusted_root.json` holding its keys and certificates: without the trust, both
cosign majors fall back to the public TUF mirror, which is the wrong answer for a private
instance (and no answer offline).

The two majors are pointed at one such instance differently (`adapters/cosign_flags.py`): cosign 3
takes the trusted root and the signing config as files; cosign 2 takes the URLs as flags and its
trust from `SIGSTORE_*` variables naming PEM files, which `cosign2_trust_files()` writes from the
one trusted root. A signing config and URLs may both be set, so one configuration serves both.
"""

from __future__ import annotations

import base64
import json
import os
import re
from dataclasses import dataclass
from datetime import UTC
from pathlib import Path
from typing import Any

from provenance_tasks.errors import InputError

PUBLIC_FULCIO = "https://fulcio.sigstore.dev"
PUBLIC_REKOR = "https://rekor.sigstore.dev"
TRUSTED_ROOT_TYPE = "application/vnd.dev.sigstore.trustedroot+json"
SIGNING_CONFIG_TYPE = "application/vnd.dev.sigstore.signingconfig"
_URL = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")


@dataclass(frozen=True)
class SigstoreInstance:
    """The services a run signs with and the trust it verifies against.

    Every field None: the public instance, trust from its TUF repository.
    """

    fulcio_url: str | None = None
    rekor_url: str | None = None
    tsa_url: str | None = None
    signing_config: Path | None = None
    trusted_root: Path | None = None
    ct_log: bool = True  # the trust holds a CT log, so a Fulcio certificate's SCT can be checked
    unsafe_ignore_sct: bool = False
    # URLs read from the signing config, for cosign 2 (which can't read one) and classic signing
    configured: tuple[str | None, str | None, str | None] = (None, None, None)

    @property
    def private(self) -> bool:
        return self.trusted_root is not None

    @property
    def fulcio(self) -> str:
        return self.fulcio_url or self.configured[0] or PUBLIC_FULCIO

    @property
    def rekor(self) -> str:
        return self.rekor_url or self.configured[1] or PUBLIC_REKOR

    @property
    def tsa(self) -> str | None:
        return self.tsa_url or self.configured[2]

    def services(self, *, keyless: bool, tlog: bool) -> dict[str, str]:
        """The services a signing run talks to, by name: what to check before anything is pushed."""
        wanted: dict[str, str] = {}
        if keyless:
            wanted["Fulcio"] = self.fulcio
        if tlog:
            wanted["Rekor"] = self.rekor
        if self.tsa:
            wanted["the timestamp authority"] = self.tsa
        return wanted


def instance(
    *,
    fulcio_url: str | None,
    rekor_url: str | None,
    tsa_url: str | None,
    signing_config: str | None,
    trusted_root: str | None,
    unsafe_ignore_sct: bool,
    cwd: Path,
) -> SigstoreInstance:
    """The instance the settings describe, with every file read and checked now (exit 2).
    An empty value is no value (`INVOKE_PROVENANCE_REKOR_URL=` unsets it)."""
    fulcio_url, rekor_url, tsa_url = fulcio_url or None, rekor_url or None, tsa_url or None
    signing_config, trusted_root = signing_config or None, trusted_root or None
    for key, url in (("fulcio_url", fulcio_url), ("rekor_url", rekor_url), ("tsa_url", tsa_url)):
        if url is not None and not _URL.fullmatch(url):
            raise InputError(
                f"provenance.{key} is {url!r}, not an http(s) URL",
                hint=f"set {key} to the service's base URL, e.g. https://rekor.example.com",
            )
    root_path = _readable(trusted_root, "trusted_root", cwd)
    config_path = _readable(signing_config, "signing_config", cwd)
    given = [
        k
        for k, v in (
            ("fulcio_url", fulcio_url),
            ("rekor_url", rekor_url),
            ("tsa_url", tsa_url),
            ("signing_config", signing_config),
        )
        if v
    ]
    if given and root_path is None:
        raise InputError(
            f"a private Sigstore ({', '.join(given)}) needs its trusted_root.json",
            hint="set provenance.trusted_root (INVOKE_PROVENANCE_TRUSTED_ROOT): without it cosign "
            "trusts the public instance, whose keys never signed what yours issues",
        )
    ct_log = True
    if root_path is not None:
        root = _json(root_path, "trusted_root", TRUSTED_ROOT_TYPE)
        ct_log = bool(root.get("ctlogs"))
    configured: tuple[str | None, str | None, str | None] = (None, None, None)
    if config_path is not None:
        config = _json(config_path, "signing_config", SIGNING_CONFIG_TYPE)
        configured = (
            _first_url(config, "caUrls"),
            _first_url(config, "rekorTlogUrls"),
            _first_url(config, "tsaUrls"),
        )
        if config.get("rekorTlogUrls") and configured[1] is None:
            raise InputError(
                f"provenance.signing_config {config_path} names no Rekor v1 log valid now (only "
                "Rekor v2, majorApiVersion 2, or retired ones): Rekor v2 is not supported yet",
                hint="add your Rekor v1 service to the signing config, or set provenance.rekor_url",
            )
        # cosign 3 signs the new bundle by the config alone: a URL setting that says otherwise
        # would send one major to one service and the other elsewhere.
        for key, url, listed in zip(
            ("fulcio_url", "rekor_url", "tsa_url"),
            (fulcio_url, rekor_url, tsa_url),
            configured,
            strict=True,
        ):
            if url and listed and url.rstrip("/") != listed.rstrip("/"):
                raise InputError(
                    f"provenance.{key} is {url}, but the signing config names {listed}",
                    hint=f"make them the same, or unset {key} and let the signing config say",
                )
    return SigstoreInstance(
        fulcio_url=fulcio_url,
        rekor_url=rekor_url,
        tsa_url=tsa_url,
        signing_config=config_path,
        trusted_root=root_path,
        ct_log=ct_log,
        unsafe_ignore_sct=unsafe_ignore_sct,
        configured=configured,
    )


def _readable(value: str | None, key: str, cwd: Path) -> Path | None:
    if value is None:
        return None
    path = (cwd / value).resolve()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise InputError(
            f"cannot read provenance.{key} {path}", hint="check the path and its rights"
        )
    return path


def _json(path: Path, key: str, media_type: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"provenance.{key} {path} is not JSON ({type(exc).__name__})",
            hint=f"point {key} at the {key}.json of your Sigstore instance",
        ) from None
    if not isinstance(data, dict) or not str(data.get("mediaType", "")).startswith(media_type):
        raise InputError(
            f"provenance.{key} {path} is not a {key}.json (its mediaType is not {media_type})",
            hint=f"point {key} at the {key}.json of your Sigstore instance",
        )
    return data


def _first_url(config: dict[str, Any], field: str) -> str | None:
    """The first v1 service of `field` valid now: cosign 2 and classic signing speak Rekor v1,
    and a v0.2 signing config may list a Rekor v2 first."""
    for entry in config.get(field) or []:
        if not isinstance(entry, dict) or entry.get("majorApiVersion", 1) != 1:
            continue
        url = entry.get("url")
        if isinstance(url, str) and url and _valid_now(entry):
            return url
    return None


def _valid_now(entry: dict[str, Any]) -> bool:
    """No `validFor.end`, or one still ahead: a retired service or key is not used."""
    from datetime import datetime

    end = (entry.get("validFor") or {}).get("end")
    if not end:
        return True
    try:
        return datetime.fromisoformat(str(end).replace("Z", "+00:00")) > datetime.now(UTC)
    except ValueError:
        return False


# --- cosign 2's trust, from the trusted root -----------------------------------------------------


def _pem(kind: str, raw_base64: str) -> str:
    body = base64.b64encode(base64.b64decode(raw_base64)).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


def _one(root: dict[str, Any], field: str) -> list[dict[str, Any]]:
    """The entry of `field` valid now; cosign 2 can't be given two (it reads the first PEM)."""
    current = [entry for entry in root.get(field, []) if _valid_now(entry.get("publicKey", entry))]
    if len(current) > 1:
        raise InputError(
            f"the trusted root lists {len(current)} current {field}: cosign 2 can trust only one",
            hint="use cosign 3 (it reads the trusted root itself), or end the old entry's validFor",
        )
    return current


def cosign2_trust_files(trusted_root: Path, folder: Path) -> dict[str, str]:
    """The `SIGSTORE_*` variables cosign 2 takes its trust from, their PEM files written from
    `trusted_root` into `folder` (the run's private folder)."""
    root = json.loads(trusted_root.read_text(encoding="utf-8"))
    parts = {
        "SIGSTORE_ROOT_FILE": (
            "fulcio.pem",
            [
                _pem("CERTIFICATE", cert["rawBytes"])
                for ca in root.get("certificateAuthorities", [])
                for cert in ca["certChain"]["certificates"]
            ],
        ),
        # cosign 2 reads one PEM key from each of these (and one TSA chain): the one valid now.
        "SIGSTORE_CT_LOG_PUBLIC_KEY_FILE": (
            "ctlog.pub",
            [_pem("PUBLIC KEY", log["publicKey"]["rawBytes"]) for log in _one(root, "ctlogs")],
        ),
        "SIGSTORE_REKOR_PUBLIC_KEY": (
            "rekor.pub",
            [_pem("PUBLIC KEY", log["publicKey"]["rawBytes"]) for log in _one(root, "tlogs")],
        ),
        "SIGSTORE_TSA_CERTIFICATE_FILE": (
            "tsa.pem",
            [
                _pem("CERTIFICATE", cert["rawBytes"])
                for tsa in _one(root, "timestampAuthorities")
                for cert in tsa["certChain"]["certificates"]
            ],
        ),
    }
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    env: dict[str, str] = {}
    for variable, (name, pems) in parts.items():
        if pems:
            path = folder / name
            path.write_text("".join(pems))
            env[variable] = str(path)
    return env


def chain_trusted_root(chain: Path, base: Path | None, folder: Path) -> Path:
    """A trusted root whose CA is a certificate chain of your own (bring-your-own PKI), with the
    transparency logs and timestamp authorities of `base` (the instance's root, if private).

    cosign 3 verifies against one trusted root, and takes no `--certificate-chain` beside it, so
    certificate mode with a private Sigstore (or the new bundle) needs the two made into one.
    Such a CA has no CT log, so the root has none either (its SCT is not checked, and said so).
    """
    pems = re.findall(
        r"-----BEGIN CERTIFICATE-----\s+(.*?)\s+-----END CERTIFICATE-----",
        chain.read_text(encoding="utf-8"),
        re.S,
    )
    if not pems:
        raise InputError(
            f"the certificate chain {chain} holds no PEM certificate",
            hint="pass --certificate-chain with the PEM certificates of your CA",
        )
    root: dict[str, Any] = {"mediaType": f"{TRUSTED_ROOT_TYPE};version=0.1", "tlogs": []}
    if base is not None:
        root = json.loads(base.read_text(encoding="utf-8"))
    root["certificateAuthorities"] = [
        {
            "subject": {"commonName": "certificate chain", "organization": str(chain)},
            "certChain": {"certificates": [{"rawBytes": "".join(pem.split())} for pem in pems]},
            # The chain's own certificates bound when it may sign; the root adds no bound.
            "validFor": {"start": "1970-01-01T00:00:00Z"},
        }
    ]
    root["ctlogs"] = []
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / "chain_trusted_root.json"
    path.write_text(json.dumps(root, indent=2))
    return path
