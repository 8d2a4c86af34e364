"""Downstream verifiers run the way their users run them, for the interop tests.

Each function runs one real tool and returns what it concluded; a refusal is a `Verdict` with
`ok=False` and the tool's own words, never an exception (a tool that is missing is a
`VerifierMissing`: the tests skip or fail on it as on any missing tool).

- `skopeo_sigstore`: containers/image's `sigstoreSigned` policy (podman, skopeo, CRI-O, buildah),
  through sid's skopeo that ci/install-tools unpacks as PREFIX/bin/skopeo-sigstore.
- `oras_discover`: the referrers of a manifest as `oras discover --format json` lists them.
- `bundle_verify`: a Sigstore bundle checked by sigstore-js's own CLI (`@sigstore/cli`, npm, in
  tests/tools), trusting the test bed's trusted_root.json delivered as a user of a private
  Sigstore gets it: from a TUF repository (`sigstore_js_trust` writes one).
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOLS = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools"))
SKOPEO = TOOLS / "bin" / "skopeo-sigstore"
ORAS = TOOLS / "bin" / "oras"
SIGSTORE_JS = Path(__file__).parents[1] / "tools" / "node_modules" / ".bin" / "sigstore"
#: The mirror named in sigstore-js's TUF cache: nothing listens there, so a run that would fetch
#: (a stale or broken cache) fails at once instead of reaching out.
TUF_MIRROR = "http://127.0.0.1:9"
TIMEOUT = 120


@dataclass(frozen=True)
class Verdict:
    ok: bool
    words: str  # the tool's own output when it refused; empty when it accepted


class VerifierMissing(RuntimeError):
    """The verifier is not installed: run ci/install-tools, or npm ci in tests/tools."""


def _require(tool: Path, how: str) -> str:
    if not tool.exists():
        raise VerifierMissing(f"{tool} is missing: {how}")
    return str(tool)


def _words(done: subprocess.CompletedProcess[str]) -> str:
    return "\n".join(part.strip() for part in (done.stderr, done.stdout) if part.strip())


# --- containers/image: skopeo with a sigstoreSigned policy ---------------------------------


def repository_of(ref: str) -> str:
    """host[:port]/path of an image reference, without its tag or digest."""
    name = ref.split("@", 1)[0]
    last = name.rsplit("/", 1)
    if len(last) == 2 and ":" in last[1]:
        name = f"{last[0]}/{last[1].split(':', 1)[0]}"
    return name


def skopeo_sigstore(
    ref: str,
    public_key: Path | None,
    *,
    platform: tuple[str, str] | None,
    folder: Path,
    tls_verify: bool,
    creds: tuple[str, str] | None,
    cert_dir: Path | None,
    fulcio: Mapping[str, str] | None = None,
    rekor_public_key: Path | None = None,
) -> Verdict:
    """Pull REF as podman/CRI-O would under a policy that requires a cosign signature by
    `public_key` (sigstoreSigned, keyPath, signedIdentity matchRepository), signatures read from
    cosign's `sha256-<digest>.sig` tags (`use-sigstore-attachments: true`).

    `skopeo copy` is what enforces a policy (`inspect` reads no signature), so the image is copied
    into an OCI layout under `folder`. `platform` (os, arch) picks the instance of an index, whose
    own signature is the one checked. `creds` go to an auth file (0600), not to argv; `cert_dir`
    holds the registry's CA as *.crt. skopeo runs as a rootless user's would, with HOME and its
    caches under `folder`, so a root run never writes /var/lib/containers. Without a key, the
    requirement is `fulcio` (`caPath`, `oidcIssuer`, `subjectEmail`): a keyless signer as
    containers/image can name one, by an e-mail SAN only."""
    skopeo = _require(SKOPEO, "run ci/install-tools (sid's skopeo, as skopeo-sigstore)")
    folder.mkdir(parents=True, exist_ok=True)
    repository = repository_of(ref)
    requirement: dict[str, Any] = {
        "type": "sigstoreSigned",
        "signedIdentity": {"type": "matchRepository"},
    }
    if public_key is not None:
        requirement["keyPath"] = str(public_key)
    else:  # a keyless signer: its CA, issuer and e-mail SAN (caPath, oidcIssuer, subjectEmail)
        requirement["fulcio"] = dict(fulcio or {})
        if rekor_public_key is not None:
            requirement["rekorPublicKeyPath"] = str(rekor_public_key)
    policy = folder / "policy.json"
    policy.write_text(
        json.dumps(
            {
                "default": [{"type": "reject"}],
                "transports": {"docker": {repository: [requirement]}},
            },
            indent=2,
        )
    )
    registries_d = folder / "registries.d"
    registries_d.mkdir(exist_ok=True)
    # JSON is YAML: registries.d reads *.yaml files.
    (registries_d / "verifier.yaml").write_text(
        json.dumps({"docker": {repository: {"use-sigstore-attachments": True}}}, indent=2)
    )
    home = folder / "home"
    (home / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_DATA_HOME": str(home / "data"),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_RUNTIME_DIR": str(home / "run"),
        # containers/image keeps root's blob-info cache in /var/lib/containers/cache, and a
        # rootless user's under XDG_DATA_HOME: this variable is how podman tells it "rootless".
        "_CONTAINERS_ROOTLESS_UID": str(os.getuid() or 65534),
    }
    argv = [skopeo, "--policy", str(policy), "--registries.d", str(registries_d)]
    if platform is not None:
        argv += ["--override-os", platform[0], "--override-arch", platform[1]]
    argv += [
        "copy",
        "--quiet",
        "--remove-signatures",
        f"--src-tls-verify={str(tls_verify).lower()}",
    ]
    if creds is not None:
        auth = folder / "auth.json"
        token = base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        auth.write_text(json.dumps({"auths": {repository.split("/", 1)[0]: {"auth": token}}}))
        auth.chmod(0o600)
        argv += ["--src-authfile", str(auth)]
    if cert_dir is not None:
        argv += ["--src-cert-dir", str(cert_dir)]
    copy = folder / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    argv += [f"docker://{ref}", f"oci:{copy}"]
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    return Verdict(done.returncode == 0, "" if done.returncode == 0 else _words(done))


# --- oras ------------------------------------------------------------------------------------


def _oras(args: list[str], *, plain_http: bool, env: Mapping[str, str] | None) -> str:
    oras = _require(ORAS, "run ci/install-tools (oras from sid)")
    argv = [oras, *args, *(["--plain-http"] if plain_http else [])]
    done = subprocess.run(
        argv, env=dict(env or os.environ), capture_output=True, text=True, timeout=TIMEOUT
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:3])}: {_words(done)}")
    return done.stdout


def oras_discover(
    ref: str,
    *,
    plain_http: bool,
    env: Mapping[str, str] | None = None,
    artifact_type: str | None = None,
) -> list[dict[str, Any]]:
    """The direct referrers of REF as `oras discover --format json` lists them, each as oras
    prints it (reference, mediaType, digest, size, artifactType, annotations and its own
    `referrers`); `annotations` is {} where oras prints none. `artifact_type` filters as a user
    does, with `--artifact-type`. oras tries the referrers API and falls back to the
    `sha256-<digest>` tag, so on a registry without the API it shows that index's descriptors.
    A failure to list (no such manifest, no login) raises RuntimeError with oras' words."""
    args = ["discover", "--format", "json", ref]
    if artifact_type is not None:
        args += ["--artifact-type", artifact_type]
    found = json.loads(_oras(args, plain_http=plain_http, env=env))
    referrers: list[dict[str, Any]] = found.get("referrers") or []
    return [{**r, "annotations": r.get("annotations") or {}} for r in referrers]


def fetch_bundle(
    repository: str,
    referrer: str,
    dest: Path,
    *,
    plain_http: bool,
    env: Mapping[str, str] | None = None,
) -> Path:
    """The Sigstore bundle that cosign 3 stores as the one layer of a referrer manifest, fetched
    with `oras manifest fetch` and `oras blob fetch` (`oras pull` skips layers without a title)."""
    manifest = json.loads(
        _oras(["manifest", "fetch", f"{repository}@{referrer}"], plain_http=plain_http, env=env)
    )
    layer = manifest["layers"][0]["digest"]
    dest.parent.mkdir(parents=True, exist_ok=True)
    _oras(
        ["blob", "fetch", "--output", str(dest), f"{repository}@{layer}"],
        plain_http=plain_http,
        env=env,
    )
    return dest


# --- sigstore-js (@sigstore/cli) -------------------------------------------------------------


@dataclass(frozen=True)
class TufTrust:
    """A TUF repository in sigstore-js's cache layout whose one target is a trusted_root.json."""

    cache: Path  # --tuf-cache-path
    mirror: str = TUF_MIRROR  # --tuf-mirror-url

    @property
    def root(self) -> Path:  # --tuf-root-path
        return self.repo / "root.json"

    @property
    def repo(self) -> Path:
        # @sigstore/tuf keeps each mirror's metadata in encodeURIComponent(host + path).
        return self.cache / self.mirror.split("://", 1)[1].rstrip("/").replace(":", "%3A")

    def flags(self) -> list[str]:
        return [
            "--tuf-mirror-url",
            self.mirror,
            "--tuf-root-path",
            str(self.root),
            "--tuf-cache-path",
            str(self.cache),
            "--tuf-force-cache",
        ]


def _canonical(document: object) -> bytes:
    # TUF's canonical JSON (OLPC) is sorted, compact JSON for documents of strings and ints.
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def sigstore_js_trust(trusted_root: Path, folder: Path, *, days: int = 1) -> TufTrust:
    """sigstore-js takes trust only from TUF (--tuf-mirror-url, --tuf-root-path), never from a
    trusted_root.json file: write a one-key TUF repository (root, targets, snapshot, timestamp,
    ed25519, valid `days`) whose target trusted_root.json is the test bed's, already in the cache
    that --tuf-force-cache reads first. Verification needs no signing_config."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    trust = TufTrust(folder)
    shutil.rmtree(trust.repo, ignore_errors=True)
    (trust.repo / "targets").mkdir(parents=True)
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    key = {"keytype": "ed25519", "scheme": "ed25519", "keyval": {"public": public.hex()}}
    keyid = hashlib.sha256(_canonical(key)).hexdigest()
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=days)
    common = {
        "spec_version": "1.0.31",
        "version": 1,
        "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    data = trusted_root.read_bytes()
    signed: dict[str, dict[str, Any]] = {
        "root": {
            "_type": "root",
            **common,
            "consistent_snapshot": False,
            "keys": {keyid: key},
            "roles": {
                role: {"keyids": [keyid], "threshold": 1}
                for role in ("root", "targets", "snapshot", "timestamp")
            },
        },
        "targets": {
            "_type": "targets",
            **common,
            "targets": {
                "trusted_root.json": {
                    "length": len(data),
                    "hashes": {"sha256": hashlib.sha256(data).hexdigest()},
                }
            },
        },
        "snapshot": {"_type": "snapshot", **common, "meta": {"targets.json": {"version": 1}}},
        "timestamp": {"_type": "timestamp", **common, "meta": {"snapshot.json": {"version": 1}}},
    }
    for role, document in signed.items():
        signature = {"keyid": keyid, "sig": private.sign(_canonical(document)).hex()}
        envelope = {"signed": document, "signatures": [signature]}
        (trust.repo / f"{role}.json").write_bytes(_canonical(envelope))
    (trust.repo / "targets" / "trusted_root.json").write_bytes(data)
    return trust


def statement_subjects(bundle: Path) -> list[str]:
    """The `sha256:` digests an in-toto statement in a DSSE bundle names; [] for other bundles."""
    envelope = json.loads(bundle.read_text()).get("dsseEnvelope")
    if not envelope:
        return []
    statement = json.loads(base64.b64decode(envelope["payload"]))
    return [
        f"sha256:{s['digest']['sha256']}"
        for s in statement.get("subject", [])
        if "sha256" in s.get("digest", {})
    ]


def bundle_verify(
    bundle: Path,
    digest: str,
    *,
    trust: TufTrust,
    identity: str | None = None,
    issuer: str | None = None,
) -> Verdict:
    """`sigstore verify BUNDLE --json` (@sigstore/cli) against `trust`, with the certificate's
    URI SAN and issuer when given (the CLI checks neither when not given).

    The CLI checks a DSSE bundle's signature, log entry and certificate, not what the statement
    is about: then, as a user must, this checks that its subject is `digest` (`sha256:...`), and
    says so in its own words when it is not. A message-signature bundle is checked against
    `digest` as a blob is not: `--blob` needs the artifact's bytes, so those are refused here.
    The CLI takes no public key: a key-signed bundle is refused ("key not found: <hint>")."""
    cli = _require(SIGSTORE_JS, "npm ci in tests/tools (@sigstore/cli)")
    argv = [cli, "verify", str(bundle), "--json", *trust.flags()]
    if identity is not None:
        argv += ["--certificate-identity-uri", identity]
    if issuer is not None:
        argv += ["--certificate-issuer", issuer]
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SIGSTORE_", "TUF_", "COSIGN_"))
    }
    env["HOME"] = str(trust.cache / "home")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    try:
        answer = json.loads(done.stdout)
    except json.JSONDecodeError:
        answer = {}
    if done.returncode != 0 or answer.get("verified") is not True:
        return Verdict(False, _words(done))
    subjects = statement_subjects(bundle)
    if not subjects:
        return Verdict(False, "not a DSSE bundle: a message signature needs the artifact's bytes")
    if digest not in subjects:
        return Verdict(
            False,
            f"sigstore verify accepted the bundle, but its statement names {', '.join(subjects)}"
            f", not {digest} (checked by tests/testbed/verifiers.py)",
        )
    return Verdict(True, "")
