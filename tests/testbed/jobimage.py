"""The job image (images/job/Dockerfile), built offline on the test bed and pushed to its plain
registry: `build_job_image(testbed)` returns it as REPOSITORY@sha256:DIGEST.

The base is trixie's root file system made by mmdebstrap (tests.testbed.debian), `docker import`ed
and pushed as REGISTRY/debian:trixie-slim; buildx builds the same Dockerfile users build from the
real debian:trixie-slim. The built image is cached as an OCI layout under PREFIX/job-image, keyed
by everything that goes into it, so a warm run pushes it again in seconds with the same digest.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

from tests.testbed import debian
from tests.testbed.bed import TestBed

ROOT = Path(__file__).parents[2]
IMAGE_FOLDER = ROOT / "images" / "job"
REPOSITORY = "provenance-tasks/job"
BASE_REPOSITORY = "debian"
BASE_TAG = "trixie-slim"
PYTHON = "3.13"  # trixie's: the wheels the image installs are cp313
CPU = "x86_64"  # the test bed's (amd64, as install-tools' debs)
# No network for RUN: the build is offline or fails (the base is the engine's pull, from loopback).
# No attestations of buildx's own: the image is one manifest, the test bed's to sign if it likes.
BUILD_FLAGS = ("--network=none", "--provenance=false", "--sbom=false")


class BuildError(RuntimeError):
    """A step of the build failed; the message holds its output's tail."""


@dataclass(frozen=True)
class Inputs:
    """Everything the image is made of, and the versions its build checks."""

    base: debian.Base
    debs: dict[str, Path]
    wheels: Path  # the tool's wheel and its dependencies' cp313 wheels
    build_args: dict[str, str]
    key: str


def build_job_image(testbed: TestBed, *, cached: bool = True) -> str:
    """The job image on `testbed`'s plain registry, as REPOSITORY@sha256:DIGEST: built when
    nothing is cached for these inputs (or `cached` is False), else the cached layout pushed."""
    with tempfile.TemporaryDirectory(prefix="job-image-") as scratch:
        inputs = gather(Path(scratch))
        repository = f"{testbed.plain_registry}/{REPOSITORY}"
        kept = debian.CACHE / f"image-{inputs.key}"
        digest_file = kept / "digest"
        if cached and digest_file.exists():
            digest = digest_file.read_text().strip()
            os.utime(kept)  # used: the newest to keep when the cache is pruned
            pushed = _crane(testbed, "push", str(kept / "layout"), f"{repository}:{inputs.key}")
            if not pushed.strip().endswith(digest):  # the layout keeps the manifest's bytes
                raise BuildError(f"the cached layout pushed as {pushed.strip()}, not {digest}")
        else:
            digest = _build(testbed, inputs, repository, Path(scratch))
            _keep(testbed, f"{repository}@{digest}", kept, digest)
        return f"{repository}@{digest}"


@dataclass(frozen=True)
class Prepared:
    """What a build of the job image needs, for builds by other means (the dogfood pipeline
    builds it with the project's own component): `docker buildx build` CONTEXT with each
    `--build-arg NAME=VALUE`, and `--network=none` if it likes (nothing is fetched)."""

    context: Path  # images/job's files, debs/ and wheels/
    build_args: dict[str, str]  # BASE (the base on the test bed's registry) and the versions


def prepare(testbed: TestBed, folder: Path) -> Prepared:
    """The base pushed to `testbed`'s plain registry (REGISTRY/debian:trixie-slim) and the job
    image's context written under `folder` (made if need be): everything but the build."""
    folder.mkdir(parents=True, exist_ok=True)
    return _prepared(testbed, gather(folder), folder)


def _prepared(testbed: TestBed, inputs: Inputs, folder: Path) -> Prepared:
    base_ref = push_base(testbed, inputs.base)
    return Prepared(context(inputs, folder / "context"), {"BASE": base_ref, **inputs.build_args})


def gather(scratch: Path) -> Inputs:
    """The base, sid's debs, the wheels and the versions expected, and the key they make."""
    base = debian.base()
    debs = debian.sid_debs()
    wheels = scratch / "wheels"
    wheels.mkdir()
    tool_wheel = _tool_wheel(wheels)
    for wheel in dependency_wheels(runtime_requirements()).iterdir():
        shutil.copy2(wheel, wheels / wheel.name)
    from provenance_tasks import __version__

    build_args = {
        "TOOL_VERSION": __version__,
        "PYTHON3_VERSION": base.packages["python3"],
        "GIT_VERSION": base.packages["git"],
        "DOCKER_CLI_VERSION": base.packages["docker-cli"],
        "COSIGN2_VERSION": base.packages["cosign"],
        "COSIGN3_VERSION": debian.deb_field(debs["cosign-3"], "Version"),
        "BUILDX_VERSION": debian.deb_field(debs["buildx"], "Version"),
    }
    parts = {
        "base": base.key,
        "debs": sorted(d.name for d in debs.values()),
        "wheels": sorted(w.name for w in wheels.iterdir()),
        "tool": _sha256(tool_wheel),
        "folder": {p.name: _sha256(p) for p in sorted(IMAGE_FOLDER.iterdir())},
        "args": build_args,
        "flags": BUILD_FLAGS,
    }
    key = hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]
    return Inputs(base, debs, wheels, build_args, key)


def runtime_requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def dev_requirements() -> list[str]:
    """What the unit tests need on 3.13: the dependencies and the dev extras the tests import
    or run (the linters and type checker run on the host's Python only)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    dev = [r for r in project["optional-dependencies"]["dev"] if not r.startswith(("ruff", "mypy"))]
    return [*project["dependencies"], *dev]


def dependency_wheels(requirements: list[str]) -> Path:
    """cp313 wheels (binary only: the image compiles nothing) for `requirements` and what they
    depend on, downloaded from the index once per requirement list."""
    key = hashlib.sha256("\n".join(sorted(requirements)).encode()).hexdigest()[:16]
    folder = debian.CACHE / f"wheels-cp313-{key}"
    if folder.is_dir():
        return folder
    scratch = Path(tempfile.mkdtemp(prefix="wheels-", dir=debian.CACHE))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--disable-pip-version-check",
            "--only-binary=:all:",
            "--python-version",
            PYTHON,
            "--implementation",
            "cp",
            "--abi",
            f"cp{PYTHON.replace('.', '')}",
            "--platform",
            f"manylinux2014_{CPU}",
            "--platform",
            f"manylinux_2_28_{CPU}",
            "--platform",
            f"manylinux_2_34_{CPU}",
            "--dest",
            str(scratch),
            *requirements,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise BuildError(f"pip download for Python {PYTHON} failed:\n{done.stderr[-3000:]}")
    scratch.rename(folder)
    return folder


def context(inputs: Inputs, folder: Path) -> Path:
    """The build context: images/job's files, debs/ and wheels/."""
    shutil.copytree(IMAGE_FOLDER, folder)
    (folder / "debs").mkdir()
    for deb in inputs.debs.values():
        shutil.copy2(deb, folder / "debs" / deb.name)
    shutil.copytree(inputs.wheels, folder / "wheels")
    return folder


def push_base(testbed: TestBed, base: debian.Base, tag: str = BASE_TAG) -> str:
    """The mmdebstrap root file system as REGISTRY/debian:TAG (docker import, push)."""
    ref = f"{testbed.plain_registry}/{BASE_REPOSITORY}:{tag}"
    _docker(testbed, "import", str(base.tarball), ref)
    _docker(testbed, "push", "--quiet", ref)
    return ref


def _build(testbed: TestBed, inputs: Inputs, repository: str, scratch: Path) -> str:
    ready = _prepared(testbed, inputs, scratch)
    metadata = scratch / "metadata.json"
    argv = [
        "buildx",
        "build",
        "--push",
        *BUILD_FLAGS,
        "--tag",
        f"{repository}:{inputs.key}",
        "--metadata-file",
        str(metadata),
    ]
    for name, value in ready.build_args.items():
        argv += ["--build-arg", f"{name}={value}"]
    _docker(testbed, *argv, str(ready.context))
    return str(json.loads(metadata.read_text())["containerimage.digest"])


def _keep(testbed: TestBed, ref: str, cached: Path, digest: str) -> None:
    """The pushed image as an OCI layout under the cache, written whole or not at all."""
    debian.CACHE.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="image-", dir=debian.CACHE))
    _crane(testbed, "pull", "--format=oci", ref, str(scratch / "layout"))
    (scratch / "digest").write_text(digest + "\n")
    shutil.rmtree(cached, ignore_errors=True)
    scratch.rename(cached)
    debian.prune("image", keep=3)  # a few: branches built side by side keep theirs


def _tool_wheel(folder: Path) -> Path:
    """The checkout's wheel (hatchling's wheels are reproducible: same source, same bytes)."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "--wheel-dir",
            str(folder),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BuildError(f"building the tool's wheel failed:\n{done.stderr[-3000:]}")
    (wheel,) = folder.glob("provenance_tasks-*.whl")
    return wheel


def _docker(testbed: TestBed, *args: str) -> str:
    return _run(["docker", *args], testbed.environ())


def _crane(testbed: TestBed, *args: str) -> str:
    return _run([str(debian.TOOLS / "bin" / "crane"), *args], testbed.environ())


def _run(argv: list[str], extra: dict[str, str]) -> str:
    env = {**os.environ, **extra, "PATH": f"{debian.TOOLS / 'bin'}:{os.environ.get('PATH', '')}"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        shown = " ".join(argv[:3])
        raise BuildError(f"{shown} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return done.stdout


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
