"""Debian's archive for the job image, offline once fetched: a trixie root file system made with
mmdebstrap (the base `docker import`s), and sid's cosign 3 and buildx packages (the Dockerfile
unpacks them beside trixie's cosign 2).

Everything is read through ci/install-tools' private apt configuration (PREFIX/apt: trixie and sid
from the mirror the system already uses, never added to its sources) and cached under
PREFIX/job-image, keyed by what the archive offers, so a second run fetches nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TOOLS = Path(os.environ.get("PROVENANCE_TOOLS", "/opt/provenance-tools"))
APT = TOOLS / "apt"
CACHE = Path(os.environ.get("PROVENANCE_JOB_IMAGE_CACHE", TOOLS / "job-image"))
SUITE = "trixie"
# What the image needs from trixie (images/job/Dockerfile installs the same list when a base lacks
# them). gitlab-ci-local's helper container also needs sh, chown, chmod and bash (Essential: always
# there) and rsync, which copies a job's artifacts out.
BASE_PACKAGES = (
    "python3",
    "python3-venv",
    "git",
    "ca-certificates",
    "docker-cli",
    "cosign",
    "rsync",
)
# As debian:*-slim: no manuals, documentation (but copyrights) or translations.
MMDEBSTRAP_OPTIONS = (
    "--variant=apt",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-include=/usr/share/doc/*/copyright",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
    "--dpkgopt=path-exclude=/usr/share/info/*",
    "--aptopt=Acquire::Languages none",
)
# sid's packages the Dockerfile unpacks, by the versions.env key ci/install-tools records them
# under: the image carries the very cosign 3 and buildx the tests run on the host.
SID_PACKAGES = {"cosign-3": "cosign", "buildx": "docker-buildx"}


class ArchiveError(RuntimeError):
    """The archive, the private apt configuration or mmdebstrap failed; says what to do."""


@dataclass(frozen=True)
class Base:
    tarball: Path  # the root file system, for `docker import`
    packages: dict[str, str]  # every package in it and its version, as dpkg reports them
    key: str  # what the archive offered when it was made: the cache key


def apt_options() -> list[str]:
    """ci/install-tools' private apt configuration (trixie and sid), read-only here."""
    if not (APT / "sources.list").exists():
        raise ArchiveError(f"no private apt configuration in {APT}: run ci/install-tools")
    options = {
        "Dir::Etc::sourcelist": APT / "sources.list",
        "Dir::Etc::sourceparts": "/dev/null",
        "Dir::State::Lists": APT / "lists",
        "Dir::Cache": APT / "cache",
        "Dir::Etc::preferences": "/dev/null",
        "Dir::Etc::preferencesparts": "/dev/null",
        "Debug::NoLocking": "1",
        "APT::Sandbox::User": "root",
    }
    return [arg for name, value in options.items() for arg in ("-o", f"{name}={value}")]


def mirror() -> str:
    """The mirror install-tools found in /etc/apt (the first URL of its sources.list)."""
    for word in (APT / "sources.list").read_text().split():
        if word.startswith(("http://", "https://")):
            return word
    raise ArchiveError(f"{APT / 'sources.list'} names no mirror: run ci/install-tools again")


def offered(suite: str, packages: tuple[str, ...]) -> dict[str, str]:
    """The version `suite` offers of each package, from the package lists (read again from the
    mirror once a day: a cached base follows the archive's point releases)."""
    if not packages:
        return {}
    _refresh_lists()
    done = subprocess.run(
        ["apt-cache", *apt_options(), "madison", *packages],
        capture_output=True,
        text=True,
        check=False,
    )
    found: dict[str, str] = {}
    for line in done.stdout.splitlines():
        name, version, where = (part.strip() for part in line.split("|")[:3])
        if f" {suite}/" in f" {where}" and name not in found:
            found[name] = version
    lacking = [p for p in packages if p not in found]
    if lacking:
        raise ArchiveError(f"{suite} offers no {', '.join(lacking)} in {APT}/lists")
    return found


def base(packages: tuple[str, ...] = BASE_PACKAGES) -> Base:
    """trixie's root file system with `packages`, made once per archive state (packages=():
    bare, as debian:trixie-slim is, for the Dockerfile's apt path)."""
    key = _digest(
        {
            "suite": SUITE,
            "packages": packages,
            "offered": offered(SUITE, packages),
            "options": MMDEBSTRAP_OPTIONS,
        }
    )
    tarball, listing = CACHE / f"base-{key}.tar", CACHE / f"base-{key}.packages"
    if not (tarball.exists() and listing.exists()):
        _mmdebstrap(tarball, listing, packages)
    os.utime(listing)  # used: the newest to keep when the cache is pruned
    installed = dict(line.split("=", 1) for line in listing.read_text().splitlines())
    return Base(tarball, installed, key)


def prune(prefix: str, keep: int) -> None:
    """Keep the `keep` newest cache entries named PREFIX-KEY (a folder, or KEY.* files): each
    source change of the tool makes a new image, about 170 MB."""
    entries: dict[str, list[Path]] = {}
    for path in CACHE.glob(f"{prefix}-*"):
        entries.setdefault(path.name.split(".")[0], []).append(path)
    newest = sorted(entries, key=lambda k: max(p.stat().st_mtime for p in entries[k]))
    for stem in newest[:-keep] if keep else newest:
        for path in entries[stem]:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _refresh_lists() -> None:
    """`apt-get update` of the private configuration when this has not done it for a day."""
    stamp = CACHE / "lists-refreshed"
    if stamp.exists() and time.time() - stamp.stat().st_mtime < 86400:
        return
    done = subprocess.run(
        ["apt-get", *apt_options(), "update", "-qq"], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise ArchiveError(f"apt-get update of trixie/sid failed: {done.stderr[-2000:]}")
    CACHE.mkdir(parents=True, exist_ok=True)
    stamp.touch()


def _mmdebstrap(tarball: Path, listing: Path, packages: tuple[str, ...]) -> None:
    if not shutil.which("mmdebstrap"):
        raise ArchiveError("mmdebstrap is not installed: run ci/install-tools")
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="base-") as scratch:
        out, versions = Path(scratch) / "rootfs.tar", Path(scratch) / "packages"
        source = (
            "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] "
            f"{mirror()} {SUITE} main"
        )
        # The hook runs on the host, the root file system at $1: list what dpkg installed.
        hook = f"chroot \"$1\" dpkg-query -W -f='${{Package}}=${{Version}}\\n' > {versions}"
        done = subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                *MMDEBSTRAP_OPTIONS,
                *([f"--include={','.join(packages)}"] if packages else []),
                f"--customize-hook={hook}",
                SUITE,
                str(out),
                source,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise ArchiveError(f"mmdebstrap failed:\n{done.stderr[-3000:]}")
        os.replace(versions, listing)
        os.replace(out, tarball)
    prune("base", keep=3)  # the image's, the bare one, and one more


def sid_debs() -> dict[str, Path]:
    """sid's cosign 3 and buildx .debs at the versions install-tools put on the host, by
    versions.env key; downloaded once (or taken from install-tools' own download)."""
    recorded = _recorded()
    debs: dict[str, Path] = {}
    folder = CACHE / "debs"
    folder.mkdir(parents=True, exist_ok=True)
    for key, package in SID_PACKAGES.items():
        version = recorded.get(key)
        if not version:
            raise ArchiveError(f"ci/install-tools recorded no {key} in {TOOLS}/versions.env")
        found = [d for d in folder.glob(f"{package}_*.deb") if deb_field(d, "Version") == version]
        if not found:
            found = [
                d
                for d in (APT / "debs" / package).glob(f"{package}_*.deb")
                if deb_field(d, "Version") == version
            ]
            if found:
                shutil.copy2(found[0], folder / found[0].name)
            else:
                _download(package, version, folder)
            found = [
                d for d in folder.glob(f"{package}_*.deb") if deb_field(d, "Version") == version
            ]
        if not found:
            raise ArchiveError(f"no {package} {version} .deb in {folder}")
        debs[key] = found[0]
    return debs


def deb_field(deb: Path, field: str) -> str:
    return subprocess.run(
        ["dpkg-deb", "--field", str(deb), field], capture_output=True, text=True, check=True
    ).stdout.strip()


def _download(package: str, version: str, folder: Path) -> None:
    done = subprocess.run(
        ["apt-get", *apt_options(), "download", "-qq", f"{package}={version}"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ArchiveError(f"could not download {package} {version}: {done.stderr[-2000:]}")


def _recorded() -> dict[str, str]:
    path = TOOLS / "versions.env"
    if not path.exists():
        raise ArchiveError(f"no {path}: run ci/install-tools")
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]
