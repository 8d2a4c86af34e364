"""The classic engine's image, saved and pushed by our own client: what its users then pull.

docker 20.10's docker driver has no OCI exporter, so the run loads the image into the engine,
saves it, makes an OCI layout of it and pushes that by digest (adapters/docker_archive.py). It is
checked here the way its users would meet it: crane validates every layer against its diff ID,
docker 20.10 itself pulls the signed digest again and runs it, and the manifest carries the
--oci-annotation that buildx's own push on this driver drops.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.conftest import COSIGNS, Registry, Runner, make_context, make_key_pair

pytestmark = [pytest.mark.integration, pytest.mark.classic]


def test_the_saved_image_is_pushed_by_digest_and_pulls_back_as_it_was_built(
    runner: Runner, registry: Registry, tmp_path: Path
) -> None:
    if runner.testbed.engine != "classic":
        pytest.skip("the current engine exports OCI layouts itself")
    cosign = str(COSIGNS["cosign3"])
    key, _ = make_key_pair(cosign, tmp_path / "keys" / "cosign")
    marker = uuid.uuid4().hex
    context = make_context(tmp_path / "ctx", marker)
    image = f"{runner.testbed.plain_registry}/classic/app-{marker[:8]}"
    done = runner.run(
        "build-sign-verify",
        *("--context", str(context), "--image", image, "--tag", "v1", "--key", str(key)),
        *("--oci-annotation", "com.example.team=platform"),
        env={"INVOKE_PROVENANCE_COSIGN": cosign, "COSIGN_PASSWORD": ""},
    )
    assert done.returncode == 0, done.stderr
    assert "loaded into the engine and saved" in done.stderr
    digest = json.loads((runner.cwd / "provenance-report.json").read_text())["build"]["digest"]
    assert registry.digest(f"{image}:v1") == digest
    assert not [t for t in registry.tags(image) if t.startswith("provenance-staging-")]

    manifest = json.loads(registry.crane("manifest", f"{image}@{digest}"))
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"] == {"com.example.team": "platform"}
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+gzip"
    }
    # Every layer downloaded, unzipped and hashed against the config's diff IDs.
    registry.crane("validate", "--remote", f"{image}@{digest}")

    # The engine forgets the image, then pulls the signed digest and runs it: the layer that
    # only this image has comes down from the registry, as we gzipped it.
    docker = runner.env()
    image_id = manifest["config"]["digest"]
    subprocess.run(["docker", "image", "rm", "--force", image_id], env=docker, check=True)
    pulled = subprocess.run(
        ["docker", "pull", f"{image}@{digest}"], env=docker, capture_output=True, text=True
    )
    assert pulled.returncode == 0, pulled.stderr
    assert "Downloaded newer image" in pulled.stdout, pulled.stdout
    ran = subprocess.run(
        ["docker", "run", "--rm", f"{image}@{digest}"],
        env=docker,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout == marker
