"""Outputs are tied to the run that wrote them: a stale dotenv never gets an old digest signed.

The story: a good build writes provenance.env; the next commit's build fails. Before, the old
provenance.env stayed, and `sign` signed the old digest with the new commit's annotations.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pytest

from tests.integration import pipelines
from tests.integration.conftest import Registry, Runner, make_context

pytestmark = pytest.mark.integration


def test_a_failed_build_leaves_no_earlier_digest_to_sign(
    runner: Runner,
    registry: Registry,
    tmp_path: Path,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, _, password = key_pair
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    good = make_context(tmp_path / "good")
    done = runner.run("build", "--context", str(good), env=env)
    assert done.returncode == 0, done.stderr
    dotenv = runner.cwd / "provenance.env"
    written = dotenv.read_text()
    assert f"PROVENANCE_COMMIT={env['CI_COMMIT_SHA']}\n" in written
    assert "PROVENANCE_RUN_ID=" in written
    assert f"IMAGE_PUBLISHED={env['CI_COMMIT_SHORT_SHA']}\n" in written
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert report["schema"] == 2 and report["run"]["commit"] == env["CI_COMMIT_SHA"]
    kept = tmp_path / "kept.env"
    shutil.copy(dotenv, kept)

    # The next commit: its build fails (no Dockerfile), and takes the old outputs with it.
    sha = hashlib.sha1(uuid.uuid4().bytes).hexdigest()  # noqa: S324 - a fake commit id
    env.update({"CI_COMMIT_SHA": sha, "CI_COMMIT_SHORT_SHA": sha[:8]})
    broken = tmp_path / "broken"
    broken.mkdir()
    done = runner.run("build", "--context", str(broken), env=env)
    assert done.returncode == 2, done.stderr
    assert not dotenv.exists() and not (runner.cwd / "provenance-report.json").exists()
    done = runner.run("sign", "--key", str(key), env=env)
    assert done.returncode == 2 and "no digest to work on" in done.stderr, done.stderr

    # An old dotenv put back by hand (or by a cache) is refused: it names another commit.
    shutil.copy(kept, dotenv)
    done = runner.run("sign", "--key", str(key), env=env)
    assert done.returncode == 2, done.stderr
    assert "was written for commit" in done.stderr and "--digest" in done.stderr
    assert not any(t.startswith("sha256-") for t in registry.tags(env["CI_REGISTRY_IMAGE"]))
