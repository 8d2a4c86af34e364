"""The consumer's view (steps/consumer.py): what our own checks accept and the tutorial's
verify refuses is never VERIFIED, on real cosign 3 and the test bed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from provenance_tasks.adapters.cosign_flags import signing_config_for
from provenance_tasks.sigstore import SigstoreInstance
from tests import interop
from tests.integration import pipelines
from tests.integration.conftest import COSIGNS, Registry, Runner, make_key_pair
from tests.integration.test_interop import Published, _cosign

pytestmark = pytest.mark.integration


def test_what_our_checks_accept_but_the_tutorials_verify_refuses_is_never_verified(
    runner: Runner, registry: Registry, context: Path, tmp_path: Path
) -> None:
    """The consumer's view: a bundle someone else attached later (signed without a log) makes
    cosign 3.1's plain verify refuse the image, though our own pinned classic read accepts it.
    A later verify says so in cosign's words (exit 3), and publish moves no tag."""
    cosign = str(COSIGNS["cosign3"])
    key, pub = make_key_pair(cosign, tmp_path / "keys" / "cosign", "pw-c")
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, "pw-c")
    done = runner.run("build-sign-verify", "--context", str(context), "--key", str(key), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((runner.cwd / "provenance-report.json").read_text())
    assert report["verify"]["consumer"]["verified"] is True
    assert report["verify"]["readers"]["cosign2"] == "yes"
    ref = report["outputs"]["IMAGE_REF"]

    # a signing config of no service: a key signature with no log entry
    no_log = SigstoreInstance(trusted_root=registry.sigstore.trusted_root)
    config = signing_config_for(no_log, keyless=False, tlog=False, folder=tmp_path)
    assert config is not None
    predicate = tmp_path / "p.json"
    predicate.write_text('{"buildDefinition": {}, "runDetails": {}}')
    attached = subprocess.run(
        [
            cosign,
            "attest",
            "--yes",
            "--key",
            str(key),
            "--type",
            "slsaprovenance1",
            "--predicate",
            str(predicate),
            "--signing-config",
            str(config),
            "--trusted-root",
            str(registry.sigstore.trusted_root),
            ref,
        ],
        env={**registry.env(), "COSIGN_PASSWORD": "pw-c"},
        capture_output=True,
        text=True,
    )
    assert attached.returncode == 0, attached.stderr
    tutorial = _cosign(
        registry,
        3,
        Published(
            interop.Row("key-file", True, "classic", True, 1, 3),
            *ref.split("@"),
            env["CI_COMMIT_SHORT_SHA"],
            [],
            ["--key", str(pub)],
        ),
        "verify",
        "--key",
        str(pub),
        ref,
    )
    assert not tutorial.ok  # what a consumer sees: cosign 3.1 takes that bundle

    again = runner.run("verify", "--public-key", str(pub), env=env)
    assert again.returncode == 3, again.stderr[-3000:]
    assert "cosign 3 verify (the tutorial's command) refuses" in again.stderr
    assert "Traceback" not in again.stderr
    repository, digest = ref.split("@")
    published = runner.run(
        "publish",
        "--public-key",
        str(pub),
        "--image",
        repository,
        "--digest",
        digest,
        "--tag",
        "moved",
        env=env,
    )
    assert published.returncode == 3, published.stderr[-3000:]
    assert "moved" not in registry.tags(repository)
