"""A Sigstore of our own on loopback (Fulcio, CT log, Rekor v1, a TSA), and OIDC tokens for it.

The server is `sigstore/server.js`, built on the npm package @sigstore/mock (pinned in
sigstore/package-lock.json, installed into sigstore/node_modules on first use, never shipped). It
verifies ID tokens against the JWKS of an OIDC issuer that only this module holds the key of, so
tests mint GitLab- and GitHub-shaped tokens that Fulcio accepts, and forged, expired or
wrong-audience ones that it refuses, as the real one would.

Like the registries, it is started by `start()` and stopped by PID; its state (keys in memory,
trust files, request log) is one temporary folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.testbed import processes

HERE = Path(__file__).with_name("sigstore")
#: What @sigstore/mock 0.12 asks of Node (its package.json "engines").
NODE_MINIMUM = ((20, 17), (22, 9))
GITLAB_ISSUER = "https://gitlab.example.com"
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@dataclass(frozen=True)
class Sigstore:
    """A running test bed: its URL, trust files and the key that mints tokens for it."""

    url: str
    state: Path
    service: processes.Service
    issuer_key: Path = field(repr=False)  # PEM, RSA: signs the test bed's ID tokens

    @property
    def trusted_root(self) -> Path:
        return self.state / "trusted_root.json"

    @property
    def signing_config(self) -> Path:
        return self.state / "signing_config.json"

    @property
    def tsa_url(self) -> str:
        return f"{self.url}/api/v1/timestamp"

    def settings(self, *, tsa: bool = False) -> dict[str, str]:
        """INVOKE_PROVENANCE_* variables that point provenance-tasks at this Sigstore."""
        env = {
            "INVOKE_PROVENANCE_FULCIO_URL": self.url,
            "INVOKE_PROVENANCE_REKOR_URL": self.url,
            "INVOKE_PROVENANCE_TRUSTED_ROOT": str(self.trusted_root),
        }
        if tsa:
            env["INVOKE_PROVENANCE_TSA_URL"] = self.tsa_url
        return env

    def requests(self) -> list[dict[str, Any]]:
        """Every request the server answered so far, oldest first."""
        log = self.state / "requests.log"
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def mint(self, claims: Mapping[str, Any], *, key: Path | None = None) -> str:
        """An RS256 JWT with these claims, signed by the issuer key (or another `key`)."""
        return mint(key or self.issuer_key, claims)


def node_version() -> tuple[int, ...] | None:
    node = shutil.which("node")
    if not node:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True, check=False).stdout
    found = re.match(r"v(\d+)\.(\d+)", out.strip())
    return (int(found.group(1)), int(found.group(2))) if found else None


def check_node() -> None:
    """Node ^20.17 or >= 22.9, as @sigstore/mock requires; say clearly what is missing."""
    version = node_version()
    if version is None:
        raise processes.ServiceError(
            "the Sigstore test bed needs Node.js ^20.17 or >= 22.9 and npm, and `node` is not on "
            "PATH (bookworm's own nodejs is 18: too old)"
        )
    major = version[0]
    ok = (major == 20 and version >= (20, 17)) or version >= (22, 9)
    if not ok:
        raise processes.ServiceError(
            f"the Sigstore test bed needs Node.js ^20.17 or >= 22.9; this is "
            f"{'.'.join(map(str, version))} (bookworm's own nodejs 18 is too old)"
        )


def install() -> None:
    """npm ci into sigstore/node_modules when it is missing or older than the lock file."""
    check_node()
    modules, lock = HERE / "node_modules", HERE / "package-lock.json"
    marker = modules / ".package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    npm = shutil.which("npm")
    if not npm:
        raise processes.ServiceError("the Sigstore test bed needs npm (it comes with Node.js)")
    done = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
        cwd=HERE,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise processes.ServiceError(f"npm ci in {HERE} failed: {done.stderr.strip()[-800:]}")


def start(
    state: Path,
    *,
    tsa: bool = False,
    issuers: tuple[str, ...] = (GITLAB_ISSUER, GITHUB_ISSUER),
) -> Sigstore:
    """Start the server with its state in `state`; it trusts tokens of `issuers` signed by the
    key this function makes."""
    install()
    state.mkdir(parents=True, exist_ok=True)
    key = state / "oidc-issuer.key"
    make_rsa_key(key)
    oidc = {"issuers": list(issuers), "jwks": {"keys": [jwk(key)]}, "tsa": tsa}
    (state / "oidc.json").write_text(json.dumps(oidc))
    (state / "server.json").unlink(missing_ok=True)
    service = processes.start(
        "sigstore",
        [shutil.which("node") or "node", str(HERE / "server.js"), str(state)],
        log=state / "server.log",
        ready=(state / "server.json").exists,
        timeout=30,
    )
    url = json.loads((state / "server.json").read_text())["url"]
    return Sigstore(url, state, service, key)


def stop(sigstore: Sigstore) -> None:
    processes.stop(sigstore.service)


# --- OIDC tokens -------------------------------------------------------------------------------


def make_rsa_key(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _load(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(path.read_bytes(), password=None)


def jwk(path: Path) -> dict[str, str]:
    numbers = _load(path).public_key().public_numbers()

    def int_b64(n: int) -> str:
        return _b64(n.to_bytes((n.bit_length() + 7) // 8, "big"))

    kid = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return {
        "kty": "RSA",
        "alg": "RS256",
        "use": "sig",
        "kid": kid,
        "n": int_b64(numbers.n),
        "e": int_b64(numbers.e),
    }


def mint(key: Path, claims: Mapping[str, Any]) -> str:
    """A compact RS256 JWS. cosign 3 takes an inline token only if it parses as RS256."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    header = {"alg": "RS256", "typ": "JWT", "kid": jwk(key)["kid"]}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = _load(key).sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{_b64(signature)}"


def _lifetime(seconds: int) -> dict[str, Any]:
    """A token's id and validity: issued now, for `seconds`."""
    now = int(time.time())
    return {"jti": str(uuid.uuid4()), "iat": now, "nbf": now - 5, "exp": now + seconds}


def gitlab_claims(
    env: Mapping[str, str], *, lifetime: int = 300, audience: str = "sigstore", **changes: Any
) -> dict[str, Any]:
    """The claims GitLab puts in a job's `id_tokens:` token, from the job's predefined variables."""
    server = env["CI_SERVER_URL"]
    project = env["CI_PROJECT_PATH"]
    host = server.split("://", 1)[1]
    tag = env.get("CI_COMMIT_TAG")
    ref_type, ref = ("tag", tag) if tag else ("branch", env["CI_COMMIT_REF_NAME"])
    ref_path = f"refs/{'tags' if tag else 'heads'}/{ref}"
    config = env.get("CI_CONFIG_PATH") or ".gitlab-ci.yml"
    claims: dict[str, Any] = {
        "iss": server,
        "aud": audience,
        "sub": f"project_path:{project}:ref_type:{ref_type}:ref:{ref}",
        "namespace_id": "71",
        "namespace_path": project.rsplit("/", 1)[0],
        "project_id": "4242",
        "project_path": project,
        "user_login": "jdoe",
        "pipeline_id": env["CI_PIPELINE_ID"],
        "pipeline_source": "push",
        "job_id": env["CI_JOB_ID"],
        "ref": ref,
        "ref_type": ref_type,
        "ref_path": ref_path,
        "ref_protected": "true",
        "sha": env["CI_COMMIT_SHA"],
        "project_visibility": "private",
        "runner_environment": "self-hosted",
        "ci_config_ref_uri": f"{host}/{project}//{config}@{ref_path}",
        "ci_config_sha": env["CI_COMMIT_SHA"],
        **_lifetime(lifetime),
    }
    claims.update(changes)
    return claims


def github_claims(
    env: Mapping[str, str], *, lifetime: int = 300, audience: str = "sigstore", **changes: Any
) -> dict[str, Any]:
    """The claims of a GitHub Actions ID token, from the run's default variables."""
    repository = env["GITHUB_REPOSITORY"]
    workflow_ref = env["GITHUB_WORKFLOW_REF"]
    claims: dict[str, Any] = {
        "iss": GITHUB_ISSUER,
        "aud": audience,
        "sub": f"repo:{repository}:ref:{env['GITHUB_REF']}",
        "ref": env["GITHUB_REF"],
        "sha": env["GITHUB_SHA"],
        "repository": repository,
        "repository_id": "1001",
        "repository_owner": repository.split("/", 1)[0],
        "run_id": env["GITHUB_RUN_ID"],
        "run_attempt": env.get("GITHUB_RUN_ATTEMPT", "1"),
        "event_name": "push",
        "workflow_ref": workflow_ref,
        "job_workflow_ref": workflow_ref,
        "job_workflow_sha": env["GITHUB_SHA"],
        "runner_environment": "github-hosted",
        **_lifetime(lifetime),
    }
    claims.update(changes)
    return claims


def environ_without_sigstore(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment less anything that would point cosign at another Sigstore."""
    source = os.environ if environ is None else environ
    return {k: v for k, v in source.items() if not k.startswith(("SIGSTORE_", "TUF_", "COSIGN_"))}


class TokenEndpoint:
    """A stand-in for the Actions runner's ID-token endpoint, on loopback, in a thread.

    It answers `GET /token?...&audience=AUD` carrying `Authorization: bearer REQUEST_TOKEN` with
    `{"value": <a GitHub-shaped token minted for AUD>}`, as the runner does, and records every
    audience it was asked for; a wrong request token gets 401.
    """

    def __init__(self, sigstore: Sigstore, env: Mapping[str, str], **claims: Any) -> None:
        import secrets
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        self.request_token = "request-" + secrets.token_hex(16)
        self.audiences: list[str] = []
        self.minted: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                if self.headers.get("Authorization") != f"bearer {endpoint.request_token}":
                    self.send_response(401)
                    self.end_headers()
                    return
                audience = query.get("audience", [""])[0]
                endpoint.audiences.append(audience)
                token = sigstore.mint(github_claims(env, audience=audience, **claims))
                endpoint.minted.append(token)
                body = json.dumps({"count": 1, "value": token}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def environ(self) -> dict[str, str]:
        """ACTIONS_ID_TOKEN_REQUEST_URL and _TOKEN as the runner sets them (the URL has a query)."""
        port = self.server.server_address[1]
        return {
            "ACTIONS_ID_TOKEN_REQUEST_URL": f"http://127.0.0.1:{port}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": self.request_token,
        }

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


if __name__ == "__main__":  # python -m tests.testbed.sigstore: install, or say what is missing
    import sys

    try:
        install()
    except processes.ServiceError as exc:
        sys.exit(f"sigstore test bed: {exc}")
    print(f"sigstore test bed ready: Node {'.'.join(map(str, node_version() or ()))}, {HERE}")
