"""Fixtures for the integration tests: the real test bed, real cosign 2.x and 3.x, real images.

Outside CI a missing tool skips these tests with the reason; in CI (CI=true) it fails them.
PROVENANCE_ENGINE picks the engine the session starts ("current" or "classic"); unset, an engine
that already answers is reused.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from provenance_tasks.sigstore import cosign2_trust_files
from tests.testbed import bed, dockerd, pki
from tests.testbed import sigstore as sigstore_bed

TOOLS = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools"))
COSIGNS = {"cosign2": TOOLS / "bin" / "cosign2", "cosign3": TOOLS / "bin" / "cosign3"}
REQUIRED = ("docker", "dockerd", "docker-registry", "htpasswd", "openssl", "busybox")


def missing(what: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} (CI=true: missing tools fail the run; run ci/install-tools)")
    pytest.skip(f"{what}: run ci/install-tools")


def tool_path() -> str:
    return f"{TOOLS / 'bin'}:/usr/sbin:{os.environ.get('PATH', '')}"


@pytest.fixture(scope="session")
def testbed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[bed.TestBed]:
    for tool in REQUIRED:
        if not shutil.which(tool, path=tool_path()):
            missing(f"{tool} is not installed")
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode != 0:
        missing("docker buildx is not installed")
    engine = os.environ.get("PROVENANCE_ENGINE") or None
    running = bed.up(Path("/tmp") / f"ptb-{uuid.uuid4().hex[:6]}", engine=engine)
    try:
        yield running
    finally:
        bed.down(running)


@pytest.fixture(scope="session")
def sigstore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sigstore_bed.Sigstore]:
    """Our own Sigstore on loopback (Fulcio, CT log, Rekor, TSA): every run signs against it."""
    try:
        sigstore_bed.install()
    except Exception as exc:  # node or npm missing, or too old: say which
        missing(str(exc))
    running = sigstore_bed.start(tmp_path_factory.mktemp("sigstore"), tsa=True)
    try:
        yield running
    finally:
        sigstore_bed.stop(running)


@pytest.fixture(params=sorted(COSIGNS))
def cosign(request: pytest.FixtureRequest) -> str:
    binary = COSIGNS[request.param]
    if not binary.exists():
        missing(f"{request.param} is not installed")
    return str(binary)


@dataclass
class Runner:
    """Runs the console script as a CI job would, with the environment the test gives it."""

    testbed: bed.TestBed
    cwd: Path
    sigstore: sigstore_bed.Sigstore

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(
                ("CI_", "GITLAB", "GITHUB", "INVOKE_", "SIGSTORE", "COSIGN", "TUF_", "ACTIONS_")
            )
        }
        base.pop("CI", None)
        base.update(self.testbed.environ())
        base["PATH"] = tool_path()
        # Every run signs with the transparency log on, against our own Sigstore.
        base.update(self.sigstore.settings())
        base.update(extra or {})
        return base

    def run(
        self, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        # Bytes, decoded by hand: universal newlines would turn the CR of GitLab's markers into LF.
        done = subprocess.run(
            [sys.executable, "-m", "provenance_tasks.cli", *args],
            cwd=self.cwd,
            env=self.env(env),
            input=stdin.encode() if stdin is not None else None,
            capture_output=True,
            timeout=600,
        )
        return subprocess.CompletedProcess(
            done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
        )


@pytest.fixture
def runner(testbed: bed.TestBed, sigstore: sigstore_bed.Sigstore, tmp_path: Path) -> Runner:
    return Runner(testbed, tmp_path, sigstore)


def make_context(folder: Path, content: str | None = None) -> Path:
    """A FROM-scratch context: a static busybox and a file that makes the digest unique."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(shutil.which("busybox") or "/bin/busybox", folder / "busybox")
    (folder / "busybox").chmod(0o755)
    (folder / "id.txt").write_text(content or uuid.uuid4().hex)
    (folder / "Dockerfile").write_text(
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY id.txt /id.txt\n"
        'ENTRYPOINT ["/bin/busybox", "cat", "/id.txt"]\n'
    )
    return folder


@pytest.fixture
def context(tmp_path: Path) -> Path:
    return make_context(tmp_path / "ctx")


def make_key_pair(cosign: str, prefix: Path, password: str = "") -> tuple[Path, Path]:
    """PREFIX.key and PREFIX.pub, made by the real cosign; the folder is made if need be."""
    prefix.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [cosign, "generate-key-pair", "--output-key-prefix", str(prefix)],
        env={**os.environ, "COSIGN_PASSWORD": password},
        check=True,
        capture_output=True,
    )
    return prefix.with_suffix(".key"), prefix.with_suffix(".pub")


@pytest.fixture
def key_pair(tmp_path: Path, cosign: str) -> tuple[Path, Path, str]:
    """A cosign key pair with a real password."""
    password = "pw-" + uuid.uuid4().hex[:8]
    key, pub = make_key_pair(cosign, tmp_path / "keys" / "cosign", password)
    return key, pub, password


@dataclass(frozen=True)
class Registry:
    """Direct access to the test registries for the tests' own checks (crane + docker config)."""

    testbed: bed.TestBed
    config: Path
    sigstore: sigstore_bed.Sigstore

    def env(self) -> dict[str, str]:
        return {
            **sigstore_bed.environ_without_sigstore(),
            **self.testbed.environ(),
            "DOCKER_CONFIG": str(self.config),
            "PATH": tool_path(),
            "TUF_ROOT": str(self.config / "tuf"),  # never the public instance's cache
        }

    def crane(self, *args: str) -> str:
        done = subprocess.run(
            [str(TOOLS / "bin" / "crane"), *args], env=self.env(), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def digest(self, ref: str) -> str:
        return self.crane("digest", ref)

    def tags(self, repository: str) -> list[str]:
        return self.crane("ls", repository).split()

    def holds_nothing(self, repository: str) -> bool:
        """True when the registry has never heard of `repository`, or it has no tag."""
        listed = subprocess.run(
            [str(TOOLS / "bin" / "crane"), "ls", repository],
            env=self.env(),
            capture_output=True,
            text=True,
        )
        return listed.returncode != 0 or not listed.stdout.strip()

    def cosign_verify(self, cosign: str, ref: str, *flags: str) -> subprocess.CompletedProcess[str]:
        """A plain `cosign verify` trusting our Sigstore, as a user of it would run one."""
        env = self.env()
        if cosign.endswith("3"):
            extra = ["--trusted-root", str(self.sigstore.trusted_root)]
            if not any(f.startswith("--new-bundle-format") for f in flags):
                extra.append("--new-bundle-format=false")
        else:
            extra = []
            env.update(cosign2_trust_files(self.sigstore.trusted_root, self.config / "trust"))
        return subprocess.run(
            [cosign, "verify", *flags, *extra, ref], env=env, capture_output=True, text=True
        )

    def payloads(self, cosign: str, ref: str, *flags: str) -> list[dict[str, object]]:
        done = self.cosign_verify(cosign, ref, *flags)
        assert done.returncode == 0, done.stderr
        return list(json.loads(done.stdout))


def annotations_of(payload: dict[str, object]) -> dict[str, object]:
    """A verified payload's annotations: its `optional` less what cosign adds from the log
    (Bundle), a timestamp authority and a keyless certificate (Subject, Issuer, Fulcio OIDs)."""
    optional = payload.get("optional") or {}
    assert isinstance(optional, dict)
    added = ("Bundle", "RFC3161Timestamp", "Subject", "Issuer")
    return {
        k: v for k, v in optional.items() if k not in added and not k.startswith("1.3.6.1.4.1.")
    }


@pytest.fixture(scope="session")
def registry(
    testbed: bed.TestBed, sigstore: sigstore_bed.Sigstore, tmp_path_factory: pytest.TempPathFactory
) -> Registry:
    config = tmp_path_factory.mktemp("crane-config")
    reg = Registry(testbed, config, sigstore)
    subprocess.run(
        [
            str(TOOLS / "bin" / "crane"),
            "auth",
            "login",
            testbed.secure_registry,
            "--username",
            testbed.username,
            "--password-stdin",
        ],
        input=testbed.password,
        env=reg.env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return reg


@pytest.fixture(scope="module")
def second_engine() -> Iterator[str]:
    """A second dockerd beside the test bed's, on its own unix socket, bridge and state (as a
    remote builder stands in); its DOCKER_HOST."""
    if os.environ.get("PROVENANCE_ENGINE", "current") != "current":
        pytest.skip("the second engine is the current one (an OCI export to the client)")
    state = Path(tempfile.mkdtemp(prefix="pt-remote-", dir="/tmp"))
    engine = dockerd.start("current", state, name="remote", bridge=False)
    try:
        yield engine.host
    finally:
        dockerd.stop(engine)
        subprocess.run(["rm", "-rf", str(state)], check=False)


def builds_on(engine: str, env: dict[str, str]) -> int:
    """How many builds the engine's BuildKit has run (its history)."""
    history = subprocess.run(
        ["docker", "--host", engine, "buildx", "history", "ls"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return len(history.stdout.strip().splitlines()) - 1  # less the header


@pytest.fixture(scope="session")
def test_ca(testbed: bed.TestBed) -> pki.CertificateAuthority:
    return pki.make_ca(testbed.state / "signing-ca", "provenance test signing CA")


@pytest.fixture(scope="session")
def source_image(testbed: bed.TestBed, tmp_path_factory: pytest.TempPathFactory) -> str:
    """One image pushed straight with buildx, for tests that exercise cosign on its own."""
    context = make_context(tmp_path_factory.mktemp("source"))
    ref = f"{testbed.plain_registry}/source/app:v1"
    subprocess.run(
        ["docker", "buildx", "build", "--push", "--tag", ref, str(context)],
        env={**os.environ, **testbed.environ(), "PATH": tool_path()},
        check=True,
        capture_output=True,
    )
    return ref


@pytest.fixture(scope="session")
def job_image(testbed: bed.TestBed) -> str:
    """The job image (images/job), built offline on the test bed from the mmdebstrap base, or
    its cached layout pushed again (tests.testbed.jobimage): REPOSITORY@sha256:DIGEST."""
    from tests.testbed import debian, jobimage

    try:
        return jobimage.build_job_image(testbed)
    except debian.ArchiveError as exc:  # no private apt configuration or mmdebstrap: say which
        missing(str(exc))
        raise
