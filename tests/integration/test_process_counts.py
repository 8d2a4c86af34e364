"""How many tool processes one run starts: each probe once, each registry answer read once.

Logging shims first on PATH record every docker, cosign, crane and git process of a real run.
The counts are the contract of the "do each thing once" step; timings are bench/'s, never a test's.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from provenance_tasks.adapters.docker import find_buildx
from tests.integration import pipelines
from tests.integration.conftest import Runner, make_context

pytestmark = pytest.mark.integration


def shimmed(runner: Runner, folder: Path) -> tuple[dict[str, str], Path]:
    """PATH with a logging shim in front of each tool, and the buildx plugin's own shim where
    provenance-tasks looks for it first (the user's config folder's cli-plugins: it runs the
    plugin directly, not through `docker`); returns the env and the log."""
    log = folder / "processes.log"
    shims = folder / "shims"
    shims.mkdir(parents=True)
    path = runner.env()["PATH"]
    for tool in ("docker", "cosign", "cosign2", "cosign3", "crane", "git"):
        real = shutil.which(tool, path=path)
        assert real, tool
        shim = shims / tool
        # One line per process: the tool, then its argv without option values that vary.
        shim.write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexec "{real}" "$@"\n')
        shim.chmod(0o755)
    users = folder / "users-docker"
    (users / "cli-plugins").mkdir(parents=True)
    real = find_buildx([])
    assert real, "the buildx plugin"
    shim = users / "cli-plugins" / "docker-buildx"
    shim.write_text(f'#!/bin/sh\necho "docker buildx $*" >> "{log}"\nexec "{real}" "$@"\n')
    shim.chmod(0o755)
    return {"PATH": f"{shims}:{path}", "DOCKER_CONFIG": str(users)}, log


def kinds(log: Path) -> Counter[str]:
    """Each process as 'tool subcommand' (docker's --config DIR skipped, buildx's kept)."""
    counted: Counter[str] = Counter()
    for line in log.read_text().splitlines():
        words = [w for w in line.split() if not w.startswith("/")]
        tool, rest = words[0], [w for w in words[1:] if w != "--config"]
        if tool.startswith("cosign"):
            tool = "cosign"
        name = " ".join([tool, *rest[:2]]) if rest[:1] == ["buildx"] else f"{tool} {rest[0]}"
        if name == "docker buildx imagetools":
            name += " " + rest[2]
        counted[name] += 1
    return counted


@pytest.mark.classic
@pytest.mark.parametrize("major", ["cosign2", "cosign3"])
def test_build_sign_verify_starts_each_tool_once_per_need(
    runner: Runner, tmp_path: Path, key_pair: tuple[Path, Path, str], major: str
) -> None:
    key, _, password = key_pair
    extra, log = shimmed(runner, tmp_path)
    env = pipelines.gitlab_key_mode(runner.testbed, major, password)
    env.update(extra)
    env["INVOKE_PROVENANCE_COSIGN"] = major  # found on PATH: through its shim
    context = make_context(tmp_path / "ctx")
    done = runner.run(
        "build-sign-verify", "--context", str(context), "--key", str(key), "--no-tlog", env=env
    )
    assert done.returncode == 0, done.stderr
    probes = {"cosign sign": 2} if major == "cosign3" else {"cosign sign": 2, "cosign verify": 2}
    # cosign 2's own verify already is the consumer's (it has no format flag): its 2 are the
    # probe and that call.
    # The classic engine's docker driver can't write an OCI layout: buildx says so at once, then
    # loads the image into the engine, which saves it for our push (steps/build.py).
    classic = runner.testbed.engine == "classic"
    builds = 2 if classic else 1
    assert kinds(log) == Counter(
        {
            "docker login": 1,
            "docker buildx build": builds,  # buildx's own probe too: no `buildx version` first
            **({"docker image": 1} if classic else {}),  # `docker image save` of the loaded one
            # Push, publish and the tag audit speak HTTP (adapters/registry/).
            "cosign public-key": 1,  # the key, decrypted once, beside the build
            # One verify in the format that was signed; on cosign 3, whose classic read is
            # pinned, the consumer's view too: the tutorial's verify, cosign's own discovery.
            "cosign verify": 2,
            "cosign attest": 1,  # signed SLSA provenance of the one manifest
            "cosign verify-attestation": 1,  # and its verification, before publishing
            "git -c": builds,  # buildx's own look at the context's git (its VCS metadata)
            # No git of ours: GitLab says when the commit was made, and a context outside any
            # work tree (found on disk) has no tracked changes to ask git about.
            **probes,  # `sign --help` (and cosign 2's `verify --help`) once, then the real call
        }
    ), log.read_text()
