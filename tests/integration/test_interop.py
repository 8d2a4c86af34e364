"""The interop matrix: what we publish, checked by the verifiers our users run, as they run them.

Each row (tests/interop.py) is a signing configuration, published by a real `build-sign-verify`
on the test bed (dockerd, a TLS registry without the referrers API, our Sigstore). Each column
is a verifier family of `provenance_tasks.compatibility`, called the way a user calls it: the
tutorial's `cosign verify -a tag=T` with a key or an identity, the user's own trust (a trusted
root, cosign 2's SIGSTORE_* files, `--insecure-ignore-tlog` without a log), and never a format
flag only we know to add. A cell passes, or is refused as predicted; anything else fails.

The table of every cell is written to $PROVENANCE_MATRIX_TABLE (default
/tmp/provenance-interop-matrix.md), which ci/test prints.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from provenance_tasks.compatibility import VERIFIERS, reading
from provenance_tasks.sigstore import chain_trusted_root, cosign2_trust_files
from tests import interop
from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner, make_key_pair
from tests.integration.test_sigstore import keyless_gitlab
from tests.testbed import pki, verifiers
from tests.testbed import sigstore as bed

pytestmark = pytest.mark.integration

FULL = os.environ.get("PROVENANCE_MATRIX") == "full"
TABLE = Path(os.environ.get("PROVENANCE_MATRIX_TABLE", "/tmp/provenance-interop-matrix.md"))
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"


@dataclass
class Published:
    """What one row's run published, and what a user of it holds to verify it."""

    row: interop.Row
    repository: str
    digest: str
    tag: str
    platforms: list[tuple[str, str]]  # (os/arch, digest) of each platform manifest
    policy: list[str]  # the signer: --key PUB, or --certificate-identity/--certificate-oidc-issuer
    key_pubs: list[Path] = field(default_factory=list)  # keys whose signatures skopeo checks
    chain: Path | None = None  # a certificate's own CA
    chain_root: Path | None = None  # that CA in a trusted root, for cosign 3
    second_pub: Path | None = None

    @property
    def ref(self) -> str:
        return f"{self.repository}@{self.digest}"


@dataclass(frozen=True)
class Cell:
    ok: bool
    words: str = ""


# --- publishing one row -------------------------------------------------------------------------


def publish(
    row: interop.Row,
    runner: Runner,
    context: Path,
    ca: pki.CertificateAuthority,
    folder: Path,
    stack: list[Callable[[], None]],
) -> Published:
    cosign = str(COSIGNS[f"cosign{row.signer}"])
    args = ["build-sign-verify", "--context", str(context), "--bundle-format", row.bundle_format]
    args += [] if row.tlog else ["--no-tlog"]
    args += [] if row.attest else ["--no-attest"]
    args += ["--platform", "linux/amd64,linux/arm64"] if row.platforms == 2 else []
    extra: dict[str, object] = {}
    if row.mode in ("keyless-gitlab", "second-key"):
        env, _ = keyless_gitlab(runner, cosign)
        policy = [
            "--certificate-identity",
            pipelines.identity(env),
            "--certificate-oidc-issuer",
            pipelines.SERVER,
        ]
        repository, tag = env["CI_REGISTRY_IMAGE"], env["CI_COMMIT_SHORT_SHA"]
        if row.mode == "second-key":
            _, second_pub = make_key_pair(cosign, folder / "second" / "cosign")
            env["INVOKE_PROVENANCE_SECOND_KEY"] = str(folder / "second" / "cosign.key")
            extra = {"second_pub": second_pub, "key_pubs": [second_pub]}
    elif row.mode == "keyless-github":
        env = pipelines.github(runner.testbed)
        endpoint = bed.TokenEndpoint(runner.sigstore, env)
        stack.append(endpoint.close)
        env.update({**endpoint.environ, "INVOKE_PROVENANCE_COSIGN": cosign})
        policy = [
            "--certificate-identity",
            f"https://github.com/{env['GITHUB_WORKFLOW_REF']}",
            "--certificate-oidc-issuer",
            bed.GITHUB_ISSUER,
        ]
        repository, tag = env["INVOKE_PROVENANCE_IMAGE"], env["GITHUB_SHA"][:8]
    elif row.mode in ("key-file", "key-env"):
        password = "pw-matrix"
        key, pub = make_key_pair(cosign, folder / "keys" / "cosign", password)
        env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
        if row.mode == "key-file":
            args += ["--key", str(key)]
        else:
            env.update(
                {
                    "COSIGN_PRIVATE_KEY": key.read_text(),
                    "INVOKE_PROVENANCE_KEY": "env://COSIGN_PRIVATE_KEY",
                }
            )
            args += ["--mode", "key"]
        policy, extra = ["--key", str(pub)], {"key_pubs": [pub]}
        repository, tag = env["CI_REGISTRY_IMAGE"], env["CI_COMMIT_SHORT_SHA"]
    else:  # certificate: a key, its certificate and the chain of a CA of your own
        env = pipelines.gitlab(runner.testbed)
        leaf = pki.issue_signing_cert(
            ca,
            folder / "leaf",
            identity_uri=pipelines.identity(env),
            issuer=pipelines.SERVER,
            name="job",
            cosign=str(COSIGNS["cosign3"]),
        )
        env.update({"COSIGN_PASSWORD": leaf.password, "INVOKE_PROVENANCE_COSIGN": cosign})
        args += [
            "--key",
            str(leaf.cosign_key),
            "--certificate",
            str(leaf.cert),
            "--certificate-chain",
            str(leaf.chain),
        ]
        policy = ["--certificate-identity", leaf.identity, "--certificate-oidc-issuer", leaf.issuer]
        root = chain_trusted_root(leaf.chain, runner.sigstore.trusted_root, folder / "trust")
        extra = {"chain": leaf.chain, "chain_root": root, "key_pubs": [leaf.cosign_pub]}
        repository, tag = env["CI_REGISTRY_IMAGE"], env["CI_COMMIT_SHORT_SHA"]
    done = runner.run(*args, env=env)
    assert done.returncode == 0, f"{row.name}: our run failed\n{done.stderr[-3000:]}"
    # A private Sigstore is all the run trusts: cosign never reaches for the public TUF CDN.
    for public in ("TUF repository", "tuf-repo-cdn", "sigstore.dev"):
        assert public not in done.stderr, f"{row.name}: {public!r} in the run's output"
    # The deprecated flags the classic format keeps are said once, not by every cosign call.
    assert "has been deprecated" not in done.stderr, done.stderr[-3000:]
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    # One row per platform and format read (both: two).
    platforms = sorted({(p["platform"], p["digest"]) for p in report["verify"]["platforms"]})
    assert len(platforms) == (row.platforms if row.platforms > 1 else 0), platforms
    return Published(
        row, repository, report["outputs"]["IMAGE_DIGEST"], tag, platforms, policy, **extra
    )  # type: ignore[arg-type]


# --- the verifiers, as users call them ----------------------------------------------------------


def _cosign(registry: Registry, major: int, published: Published, *argv: str) -> Cell:
    """A cosign command line with the user's trust: cosign 3 a trusted root, cosign 2 its
    SIGSTORE_* files; `--insecure-ignore-tlog` without a log; the CA's chain in cert mode."""
    env = registry.env()
    trust: list[str] = []
    if major == 3:
        root = published.chain_root or registry.sigstore.trusted_root
        trust += ["--trusted-root", str(root)]
    else:
        env.update(cosign2_trust_files(registry.sigstore.trusted_root, registry.config / "t2"))
        if published.chain is not None:
            trust += ["--certificate-chain", str(published.chain)]
    if published.chain is not None:
        trust += ["--insecure-ignore-sct"]  # your own CA has no certificate transparency log
    if not published.row.tlog:
        trust += ["--insecure-ignore-tlog"]
    subcommand, *rest = argv
    done = subprocess.run(
        [str(COSIGNS[f"cosign{major}"]), subcommand, *trust, *rest],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Cell(done.returncode == 0, _last(done.stderr))


def cosign_verify(major: int) -> Callable[[Registry, Published], Cell]:
    """The tutorial's verify: `-a tag=T`, the signer, IMAGE@DIGEST; the second key's too."""

    def check(registry: Registry, published: Published) -> Cell:
        ref, tag = published.ref, f"tag={published.tag}"
        main = _cosign(registry, major, published, "verify", *published.policy, "-a", tag, ref)
        if not main.ok or published.second_pub is None:
            return main
        second = ["--key", str(published.second_pub)]
        cosigned = _cosign(
            registry, major, replace_chain(published), "verify", *second, "-a", tag, ref
        )
        return Cell(cosigned.ok, f"second key: {cosigned.words}")

    return check


def replace_chain(published: Published) -> Published:
    """The same publication seen by a key verifier: no certificate chain to pass."""
    return Published(
        published.row,
        published.repository,
        published.digest,
        published.tag,
        published.platforms,
        published.policy,
    )


def cosign_verify_attestation(major: int) -> Callable[[Registry, Published], Cell]:
    def check(registry: Registry, published: Published) -> Cell:
        return _cosign(
            registry,
            major,
            published,
            "verify-attestation",
            "--type",
            "slsaprovenance1",
            *published.policy,
            published.ref,
        )

    return check


def containers_image(registry: Registry, published: Published, folder: Path) -> Cell:
    """skopeo (sid's 1.22) with a `sigstoreSigned` policy on each platform: `keyPath` for each
    key that signed, else a `fulcio` requirement naming the keyless signer as it can (an e-mail
    SAN: the CI's URI is all a user has to put there)."""
    testbed = registry.testbed
    common: dict[str, object] = {
        "tls_verify": True,
        "creds": (testbed.username, testbed.password),
        "cert_dir": None,  # the test CA is in /etc/docker/certs.d, where skopeo looks too
    }
    targets = published.platforms or [("", published.digest)]
    keys: list[Path | None] = list(published.key_pubs) or [None]
    if None in keys:
        trust = cosign2_trust_files(registry.sigstore.trusted_root, folder / "trust")
        identity, issuer = published.policy[1], published.policy[3]
        common["fulcio"] = {
            "caPath": trust["SIGSTORE_ROOT_FILE"],
            "oidcIssuer": issuer,
            "subjectEmail": identity,
        }
        common["rekor_public_key"] = Path(trust["SIGSTORE_REKOR_PUBLIC_KEY"])
    for index, pub in enumerate(keys):
        for platform, _ in targets:
            os_arch = tuple(platform.split("/")[:2]) if platform else None
            verdict = verifiers.skopeo_sigstore(
                published.ref,
                pub,
                platform=os_arch,
                folder=folder / f"skopeo-{index}",  # type: ignore[arg-type]
                **common,  # type: ignore[arg-type]
            )
            if not verdict.ok:
                return Cell(False, f"{platform or 'the image'}: {_last(verdict.words)}")
    return Cell(True)


def _bundles(registry: Registry, published: Published, digest: str, folder: Path) -> list[Path]:
    """The bundles among `digest`'s referrers, fetched as a user of oras fetches them."""
    ref = f"{published.repository}@{digest}"
    env = registry.env()
    found = verifiers.oras_discover(ref, plain_http=False, env=env, artifact_type=BUNDLE_TYPE)
    paths = []
    for referrer in found:
        path = folder / f"{referrer['digest'].split(':')[1]}.json"
        verifiers.fetch_bundle(
            published.repository, referrer["digest"], path, plain_http=False, env=env
        )
        paths.append(path)
    return paths


def oras(registry: Registry, published: Published, folder: Path) -> Cell:
    """Every digest we signed shows its bundles under their real artifact type: a signature
    (the second key's too), and an attestation when there is one."""
    env = registry.env()
    for _, digest in [("", published.digest), *published.platforms]:
        ref = f"{published.repository}@{digest}"
        found = verifiers.oras_discover(ref, plain_http=False, env=env, artifact_type=BUNDLE_TYPE)
        wanted = 1 + (published.second_pub is not None) + published.row.attest
        if len(found) < wanted:
            everything = verifiers.oras_discover(ref, plain_http=False, env=env)
            types = sorted(str(r.get("artifactType")) for r in everything)
            return Cell(False, f"{digest}: {len(found)} bundle(s) of {wanted}; listed: {types}")
    return Cell(True)


def sigstore_bundle(registry: Registry, published: Published, folder: Path) -> Cell:
    """sigstore-js's CLI on each bundle of the index, trusting the test bed's root through TUF,
    expecting the signer as cosign's users name it (a key signer has no such option)."""
    trust = verifiers.sigstore_js_trust(registry.sigstore.trusted_root, folder / "tuf")
    identity = issuer = None
    if published.policy[0] == "--certificate-identity":
        identity, issuer = published.policy[1], published.policy[3]
    bundles = _bundles(registry, published, published.digest, folder / "bundles")
    if identity is not None:  # the keyless signer's: a second key's bundle is not theirs
        bundles = [b for b in bundles if "publicKey" not in _material(b)]
    if not bundles:
        return Cell(False, "no bundle found")
    for bundle in bundles:
        verdict = verifiers.bundle_verify(
            bundle, published.digest, trust=trust, identity=identity, issuer=issuer
        )
        if not verdict.ok:
            return Cell(False, _last(verdict.words))
    return Cell(True)


Column = Callable[[Registry, Published, Path], Cell]
COLUMNS: dict[str, Column] = {
    "cosign2": lambda registry, published, _: cosign_verify(2)(registry, published),
    "cosign3": lambda registry, published, _: cosign_verify(3)(registry, published),
    "cosign2-attestation": lambda r, p, _: cosign_verify_attestation(2)(r, p),
    "cosign3-attestation": lambda r, p, _: cosign_verify_attestation(3)(r, p),
    "containers-image": containers_image,
    "oras": oras,
    "sigstore-bundle": sigstore_bundle,
    "provenance-tasks": lambda registry, published, _: Cell(True, "the run verified"),
}


def _material(bundle: Path) -> dict[str, object]:
    material = json.loads(bundle.read_text()).get("verificationMaterial") or {}
    return dict(material)


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:240] if lines else ""


# --- the matrix ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table() -> Iterator[dict[str, dict[str, str]]]:
    cells: dict[str, dict[str, str]] = {}
    yield cells
    names = list(VERIFIERS)
    lines = ["| configuration | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for row_name, row_cells in sorted(cells.items()):
        lines.append(f"| {row_name} | " + " | ".join(row_cells.get(n, "n/a") for n in names) + " |")
    TABLE.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("row", interop.rows(FULL), ids=lambda row: row.name)
def test_what_we_publish_is_read_as_predicted(
    row: interop.Row,
    runner: Runner,
    registry: Registry,
    context: Path,
    test_ca: pki.CertificateAuthority,
    tmp_path: Path,
    table: dict[str, dict[str, str]],
) -> None:
    if runner.testbed.engine == "classic" and row.platforms > 1:
        pytest.skip("the classic engine builds one platform")
    stack: list[Callable[[], None]] = []
    try:
        published = publish(row, runner, context, test_ca, tmp_path, stack)
        cells, unpredicted = {}, []
        for name in interop.columns(row):
            expected = reading(row.publication, name)
            assert expected is not None
            got = COLUMNS[name](registry, published, tmp_path / name)
            cells[name] = "pass" if got.ok else "refused"
            if got.ok != expected.reads:
                cells[name] += " (UNPREDICTED)"
                unpredicted.append(
                    f"{name}: predicted {expected}, got "
                    f"{'pass' if got.ok else 'refusal'}: {got.words}"
                )
        table[row.name] = cells
        assert not unpredicted, "\n".join(unpredicted)
    finally:
        for close in stack:
            close()


@pytest.mark.parametrize("mode", ["key", "keyless"])
def test_each_image_of_a_set_passes_the_tutorials_verify_on_both_cosigns(
    runner: Runner, registry: Registry, tmp_path: Path, mode: str
) -> None:
    """The defaults on a set of images, signed by cosign 3: each image is read by the
    tutorial's `cosign verify -a tag=T` on cosign 2 and 3, and by verify-attestation."""
    from tests.integration.test_images import monorepo

    monorepo(runner, ["api", "worker"])
    cosign = str(COSIGNS["cosign3"])
    row = interop.Row(
        "key-file" if mode == "key" else "keyless-gitlab", True, "classic", True, 1, 3
    )
    if mode == "key":
        key, pub = make_key_pair(cosign, tmp_path / "keys" / "cosign", "pw-set")
        env = pipelines.gitlab_key_mode(runner.testbed, cosign, "pw-set")
        args, policy = ["--key", str(key)], ["--key", str(pub)]
    else:
        env, _ = keyless_gitlab(runner, cosign)
        args = []
        policy = [
            "--certificate-identity",
            pipelines.identity(env),
            "--certificate-oidc-issuer",
            pipelines.SERVER,
        ]
    done = runner.run("build-sign-verify", *args, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    images = json.loads((runner.cwd / "provenance-report.json").read_text())["images"]
    assert sorted(images) == ["api", "worker"]
    for name, image in images.items():
        ref = image["outputs"]["IMAGE_REF"]
        repository, digest = ref.split("@")
        published = Published(row, repository, digest, env["CI_COMMIT_SHORT_SHA"], [], policy)
        for column in ("cosign2", "cosign3", "cosign2-attestation", "cosign3-attestation"):
            cell = COLUMNS[column](registry, published, tmp_path / name)
            assert cell.ok, f"{name}: {column}: {cell.words}"


@pytest.mark.parametrize(
    ("cell", "needle"),
    [
        ("keyless-no-tlog", "--no-tlog"),
        ("cosign2-new", "cosign 2 can't sign an image in the new bundle format"),
        ("cosign2-both", "cosign 2 can't sign an image in the new bundle format"),
        ("cosign2-verify-new", "cosign 2 can't read what provenance.bundle_format new publishes"),
    ],
)
def test_cells_that_are_not_configurations_are_bad_input_before_anything_is_pushed(
    runner: Runner, registry: Registry, context: Path, cell: str, needle: str
) -> None:
    major = "cosign3" if cell == "keyless-no-tlog" else "cosign2"
    env, _ = keyless_gitlab(runner, str(COSIGNS[major]))
    build = ["build-sign-verify", "--context", str(context)]
    args = {
        "keyless-no-tlog": [*build, "--no-tlog"],
        "cosign2-new": [*build, "--bundle-format", "new"],
        "cosign2-both": [*build, "--bundle-format", "both"],
        "cosign2-verify-new": ["verify", "--digest", "sha256:" + "a" * 64],
    }[cell]
    if cell == "cosign2-verify-new":
        env["INVOKE_PROVENANCE_BUNDLE_FORMAT"] = "new"
    done = runner.run(*args, env=env)
    assert done.returncode == 2, done.stderr[-2000:]
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert registry.holds_nothing(env["CI_REGISTRY_IMAGE"])
