"""Real OCI registries (distribution 2.8, Debian's docker-registry) on loopback.

`plain` speaks HTTP, as a laptop's localhost:5000 does. `secure` speaks TLS with a certificate from
the test bed's own CA and asks for a login (htpasswd, bcrypt), so `login` is tested for real.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from tests.testbed import processes


@dataclass(frozen=True)
class Registry:
    address: str  # host:port, as used in image references
    service: processes.Service
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: Path | None = None


def _binary() -> str:
    found = shutil.which("docker-registry") or shutil.which("registry")
    if not found:
        raise processes.ServiceError("docker-registry is missing: run ci/install-tools")
    return found


def write_htpasswd(path: Path, username: str, password: str) -> None:
    """bcrypt entry made by htpasswd, the password given on stdin (never in argv)."""
    result = subprocess.run(
        ["htpasswd", "-B", "-i", "-n", username],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise processes.ServiceError(f"htpasswd failed: {result.stderr.strip()}")
    path.write_text(result.stdout)
    path.chmod(0o600)


def start(
    state: Path,
    name: str,
    *,
    port: int | None = None,
    tls: tuple[Path, Path] | None = None,
    login: tuple[str, str] | None = None,
    ca_file: Path | None = None,
) -> Registry:
    """Start a registry storing its blobs under state/name; `tls` is (certificate, key)."""
    root = state / f"registry-{name}"
    root.mkdir(parents=True, exist_ok=True)
    port = port or processes.free_port()
    http: dict[str, object] = {"addr": f"127.0.0.1:{port}", "secret": "testbed"}
    if tls:
        http["tls"] = {"certificate": str(tls[0]), "key": str(tls[1])}
    config: dict[str, object] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(root / "data")},
            "delete": {"enabled": True},
        },
        "http": http,
    }
    if login:
        htpasswd = root / "htpasswd"
        write_htpasswd(htpasswd, *login)
        config["auth"] = {
            "htpasswd": {"realm": f"provenance-testbed-{name}", "path": str(htpasswd)}
        }
    # JSON is YAML: no YAML library needed.
    (root / "config.yml").write_text(json.dumps(config, indent=2))
    service = processes.start(
        f"registry ({name})",
        [_binary(), "serve", str(root / "config.yml")],
        log=root / "registry.log",
        ready=lambda: processes.port_open("127.0.0.1", port),
    )
    user, password = login if login else (None, None)
    return Registry(f"127.0.0.1:{port}", service, user, password, ca_file)


def stop(registry: Registry) -> None:
    processes.stop(registry.service)
