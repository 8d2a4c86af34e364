"""Many images in one run (provenance.images), on real tools: a broken one among good ones, a
shard per CI job and a later job verifying the union, and a build on a second engine through a
docker context. Every signature goes to our Sigstore with the transparency log on.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.integration import pipelines
from tests.integration.conftest import (
    Registry,
    Runner,
    annotations_of,
    builds_on,
    make_context,
)

pytestmark = pytest.mark.integration

TITLE = "org.opencontainers.image.title"


def monorepo(
    runner: Runner, names: list[str], *, broken: str | None = None, extra: str = ""
) -> None:
    """An invoke.yaml listing `names`, each with its own context under services/."""
    lines = ["provenance:", "  images:"]
    for name in names:
        context = make_context(runner.cwd / "services" / name)
        if name == broken:
            (context / "Dockerfile").write_text("FROM scratch\nCOPY nothing-here /x\n")
        lines += [f"    - name: {name}", f"      context: services/{name}"]
    (runner.cwd / "invoke.yaml").write_text("\n".join(lines) + "\n" + extra)


def report(runner: Runner, name: str = "provenance-report.json") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((runner.cwd / name).read_text())
    return data


def dotenv(runner: Runner, name: str = "provenance.env") -> dict[str, str]:
    text = (runner.cwd / name).read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


@pytest.mark.classic
def test_a_broken_image_is_named_and_never_hides_the_good_ones(
    runner: Runner,
    registry: Registry,
    key_pair: tuple[Path, Path, str],
    cosign: str,
) -> None:
    key, pub, password = key_pair
    monorepo(runner, ["svc-a", "svc-b", "svc-c", "broken"], broken="broken")
    env = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--key", str(key), "--no-attest", env=env)
    assert done.returncode == 4, done.stderr
    assert "1 of 4 images failed: broken" in done.stderr, done.stderr
    assert re.search(r"broken\s+failed", done.stderr)
    # The set's one bake fails with the broken Dockerfile: said once, and each image then
    # builds on its own, so the failure is the broken image's alone. The classic engine's
    # builder writes no OCI layout at all: said so, and each image is loaded and saved.
    said = (
        "this builder writes no OCI layout"
        if runner.testbed.engine == "classic"
        else "the set's buildx bake failed"
    )
    assert done.stderr.count(said) == 1

    found, values = report(runner), dotenv(runner)
    assert found["status"] == "failed" and found["failure"] == {"images": ["broken"]}
    assert found["images"]["broken"]["failure"]["step"] == "build"
    tag = env["CI_COMMIT_SHORT_SHA"]
    for name in ("svc-a", "svc-b", "svc-c"):
        section = found["images"][name]
        assert section["status"] == "ok", section["failure"]
        repository = f"{env['CI_REGISTRY_IMAGE']}/{name}"  # the CI's, the name under it
        ref = f"{repository}@{section['build']['digest']}"
        assert section["outputs"]["IMAGE_REF"] == ref
        assert values[f"{name.upper().replace('-', '_')}_IMAGE_REF"] == ref
        # Verifiable by its tag with a plain cosign, its annotations the pipeline's.
        payloads = registry.payloads(cosign, f"{repository}:{tag}", "--key", str(pub))
        assert annotations_of(payloads[0]) == pipelines.expected_annotations(env, tag)
        config = json.loads(registry.crane("config", ref))
        assert config["config"]["Labels"][TITLE] == name  # titled by its name, not the folder
    assert "BROKEN_IMAGE_REF" not in values
    assert registry.holds_nothing(f"{env['CI_REGISTRY_IMAGE']}/broken")

    # GitLab's sections can't interleave: each image's output was printed whole.
    lines = [line for line in done.stderr.splitlines() if line.replace("\x1b[0K", "").strip()]
    for name in ("svc-a", "svc-b", "svc-c", "broken"):
        # The set's bake has a log of its own, [Bake] (no image's name can start with a capital),
        # which quotes buildx's "[svc-a] exporting to oci image format" among its lines.
        mine = [
            n
            for n, line in enumerate(lines)
            if (f"[{name}]" in line and "[Bake]" not in line)
            or re.search(f"section_(start|end):[0-9]+:{name}_", line)
        ]
        assert any("[Bake]" in line for line in lines)
        assert mine == list(range(mine[0], mine[-1] + 1)), f"{name}'s lines are interleaved"


def test_a_shard_builds_its_half_and_a_later_job_verifies_the_union(
    runner: Runner,
    registry: Registry,
    key_pair: tuple[Path, Path, str],
) -> None:
    key, pub, password = key_pair
    names = ["api", "db", "web", "worker"]
    monorepo(runner, names)
    env = pipelines.gitlab_key_mode(runner.testbed, "cosign3", password)
    built: dict[str, list[str]] = {}
    for index in ("1", "2"):  # the two jobs of `parallel: 2`, their artifacts in one folder
        job = {**env, "CI_NODE_INDEX": index, "CI_NODE_TOTAL": "2", "CI_JOB_ID": f"70{index}"}
        done = runner.run("build-sign-verify", "--key", str(key), "--no-attest", env=job)
        assert done.returncode == 0, done.stderr
        assert "shard" in done.stderr and "CI_NODE_INDEX/CI_NODE_TOTAL" in done.stderr
        built[index] = sorted(report(runner, f"provenance-report-{index}.json")["images"])
        values = dotenv(runner, f"provenance-{index}.env")
        assert {k for k in values if k.endswith("_IMAGE_REF")} == {
            f"{n.upper()}_IMAGE_REF" for n in built[index]
        }
    # Names sorted, dealt in turn: every job agrees without talking to the others.
    assert built == {"1": ["api", "web"], "2": ["db", "worker"]}
    assert not (runner.cwd / "provenance-report.json").exists()

    # A later job (no shard) verifies every image from the shards' reports, each checked
    # against the job that signed it.
    later = {**env, "CI_JOB_ID": "800", "CI_JOB_URL": env["CI_JOB_URL"] + "-verify"}
    done = runner.run("verify", "--public-key", str(pub), env=later)
    assert done.returncode == 0, done.stderr
    rows = {row["name"]: row for row in _summary_rows(done.stderr)}
    assert set(rows) == set(names) and all(r["verified"] == "yes" for r in rows.values())
    pinned = dotenv(runner, "provenance-verified.env")  # what a deploy job pins, by digest
    verified = report(runner)["images"]
    assert pinned == {
        f"{n.upper()}_VERIFIED_IMAGE_REF": verified[n]["verify"]["reference"] for n in names
    }
    for name in names:
        expected = verified[name]["verify"]["expected"][0]["annotations"]
        assert expected["com.gitlab.ci.job.id"] == ("701" if name in built["1"] else "702")

    # Elsewhere (no invoke.yaml, no report): --image-name reads GitLab's dotenv variables.
    handed = {**later, **dotenv(runner, "provenance-1.env")}  # as GitLab hands a dotenv on
    (runner.cwd / "invoke.yaml").unlink()
    for path in runner.cwd.glob("provenance*"):
        path.unlink()
    done = runner.run("verify", "--image-name", "web", "--public-key", str(pub), env=handed)
    assert done.returncode == 0, done.stderr
    assert "WEB_IMAGE_REF in the environment doesn't name the signing job" in done.stderr


def _summary_rows(stderr: str) -> list[dict[str, str]]:
    rows = []
    for line in stderr.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[1] in ("ok", "failed") and parts[2] in ("yes", "NO", "-"):
            rows.append({"name": parts[0], "status": parts[1], "verified": parts[2]})
    return rows


@pytest.mark.parametrize("cosign", ["cosign3"])  # the engine is what this is about, not cosign
def test_a_build_on_another_engine_through_a_docker_context_signs_and_verifies(
    runner: Runner,
    registry: Registry,
    key_pair: tuple[Path, Path, str],
    second_engine: str,
    tmp_path: Path,
    cosign: str,
) -> None:
    key, pub, password = key_pair
    users = tmp_path / "user-docker"  # the user's own docker config, with their context
    made = subprocess.run(
        [
            "docker",
            "--config",
            str(users),
            "context",
            "create",
            "builders",
            "--docker",
            f"host={second_engine}",
        ],
        capture_output=True,
        text=True,
        env=runner.env(),
    )
    assert made.returncode == 0, made.stderr
    context = make_context(runner.cwd / "remote-ctx")
    env = {
        **pipelines.gitlab_key_mode(runner.testbed, cosign, password),
        "DOCKER_CONFIG": str(users),
        "INVOKE_PROVENANCE_DOCKER_CONTEXT": "builders",
    }
    before = builds_on(second_engine, runner.env())
    local_before = builds_on(runner.testbed.docker_host, runner.env())
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--builder",
        "builders",
        "--no-attest",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    assert 'building with "builders" instance' in done.stderr
    # The second engine ran the build (its history has it); the test bed's engine did not.
    assert builds_on(second_engine, runner.env()) == before + 1
    assert builds_on(runner.testbed.docker_host, runner.env()) == local_before
    digest = report(runner)["build"]["digest"]
    ref = f"{env['CI_REGISTRY_IMAGE']}@{digest}"
    assert registry.payloads(cosign, ref, "--key", str(pub))

    # Without the context, the builder of it is named as bad input, with what to set.
    env.pop("INVOKE_PROVENANCE_DOCKER_CONTEXT")
    done = runner.run(
        "build-sign-verify",
        "--context",
        str(context),
        "--key",
        str(key),
        "--builder",
        "builders",
        "--no-attest",
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert "set provenance.docker_context to builders" in done.stderr


def test_processes_of_a_set_probe_and_log_in_once(
    runner: Runner,
    key_pair: tuple[Path, Path, str],
    tmp_path: Path,
) -> None:
    from tests.integration.test_process_counts import kinds, shimmed

    key, _, password = key_pair
    monorepo(runner, ["one", "two", "three"])
    extra, log = shimmed(runner, tmp_path)
    env = {**pipelines.gitlab_key_mode(runner.testbed, "cosign3", password), **extra}
    done = runner.run("build-sign-verify", "--key", str(key), "--no-attest", env=env)
    assert done.returncode == 0, done.stderr
    counted = kinds(log)
    assert counted["docker login"] == 1
    assert counted["cosign public-key"] == 1  # the key decrypted once, for every image
    assert counted["docker buildx bake"] == 1  # every image's build in one bake
    assert counted["docker buildx build"] == 0

    # --no-bake: a build per image, and nothing else changes.
    log.unlink()
    done = runner.run("build-sign-verify", "--key", str(key), "--no-attest", "--no-bake", env=env)
    assert done.returncode == 0, done.stderr
    counted = kinds(log)
    assert (counted["docker buildx bake"], counted["docker buildx build"]) == (0, 3)
    assert counted["cosign public-key"] == 1


def test_a_wrong_key_password_is_the_runs_bad_input_said_once(
    runner: Runner,
    registry: Registry,
    key_pair: tuple[Path, Path, str],
) -> None:
    key, _, password = key_pair
    monorepo(runner, ["one", "two", "three"])
    env = pipelines.gitlab_key_mode(runner.testbed, "cosign3", password + "-not-it")
    done = runner.run("build-sign-verify", "--key", str(key), "--no-attest", env=env)
    assert done.returncode == 2, done.stderr
    assert "images failed" not in done.stderr  # the run's bad input, not three failures
    assert done.stderr.count("provenance-tasks: ") == 1
    for name in ("one", "two", "three"):
        assert registry.holds_nothing(f"{env['CI_REGISTRY_IMAGE']}/{name}")


def test_fail_fast_starts_no_image_after_a_failure_and_an_images_file_is_read(
    runner: Runner,
    registry: Registry,
    key_pair: tuple[Path, Path, str],
) -> None:
    key, _, password = key_pair
    names = ["broken", "after-a", "after-b"]
    monorepo(runner, names, broken="broken")
    (runner.cwd / "invoke.yaml").unlink()  # the same list, as a CI template hands it on:
    (runner.cwd / "images.yml").write_text(
        "".join(f"- name: {name}\n  context: services/{name}\n" for name in names)
    )
    env = {
        **pipelines.gitlab_key_mode(runner.testbed, "cosign3", password),
        "INVOKE_PROVENANCE_IMAGES_FILE": "images.yml",
    }
    done = runner.run(
        "build-sign-verify", "--key", str(key), "--no-attest", "--jobs", "1", "--fail-fast", env=env
    )
    assert done.returncode == 4, done.stderr
    assert "not started (--fail-fast): after-a, after-b" in done.stderr
    rows = {row["name"]: row for row in _summary_rows(done.stderr)}
    assert rows["broken"]["status"] == "failed"
    assert re.search(r"after-a\s+not run", done.stderr)
    for name in ("after-a", "after-b"):
        assert registry.holds_nothing(f"{env['CI_REGISTRY_IMAGE']}/{name}")


def build_jobs_section(section: dict[str, Any], *, verdict: bool = True) -> dict[str, Any]:
    """What the build job wrote in an image's section, field for field (a later verify adds
    its own task and steps; one that passed sets its verdict: `verdict` False leaves it out)."""
    first = section["tasks"][0]["task"]
    later = ("status", "failure", "tasks", "steps", *(() if verdict else ("verify",)))
    return {
        **{k: v for k, v in section.items() if k not in later},
        "tasks": section["tasks"][:1],
        "steps": [s for s in section["steps"] if s["task"] == first],
    }


@pytest.mark.parametrize("cosign", ["cosign3"])  # the outputs are what this is about
def test_a_failed_downstream_verify_of_a_set_leaves_the_builds_outputs_for_a_good_one(
    runner: Runner,
    registry: Registry,
    key_pair: tuple[Path, Path, str],
    tmp_path: Path,
    cosign: str,
) -> None:
    key, pub, password = key_pair
    monorepo(runner, ["api", "worker"])
    build_job = pipelines.gitlab_key_mode(runner.testbed, cosign, password)
    done = runner.run("build-sign-verify", "--key", str(key), "--no-attest", env=build_job)
    assert done.returncode == 0, done.stderr
    dotenv_file = runner.cwd / "provenance.env"
    verified_file = runner.cwd / "provenance-verified.env"
    handed, written = dotenv_file.read_bytes(), report(runner)
    refs = {name: written["images"][name]["outputs"]["IMAGE_REF"] for name in ("api", "worker")}

    def intact(*, verdict: bool = True) -> None:
        """The build's dotenv byte for byte, its part of the report field for field (its
        verdict too, unless a verify passed since)."""
        assert dotenv_file.read_bytes() == handed
        now = report(runner)
        for field in ("schema", "run", "shard", "outputs"):
            assert now[field] == written[field], field
        assert now["tasks"][0] == written["tasks"][0]
        for name, section in written["images"].items():
            found = build_jobs_section(now["images"][name], verdict=verdict)
            assert found == build_jobs_section(section, verdict=verdict), name
        assert not verified_file.exists() or verified_file.stat().st_size > 0

    def tasks_after_the_build() -> list[tuple[str, str]]:
        return [(t["task"], t["status"]) for t in report(runner)["tasks"][1:]]

    # The deploy job: the build job's files as artifacts, its dotenv as GitLab's variables.
    deploy_job = {**build_job, "CI_JOB_ID": "98766", **dotenv(runner)}
    assert deploy_job["API_IMAGE_REF"] == refs["api"]
    missing = str(pub) + ".missing"
    for bad in (["--public-key", str(pub), "--only", "nope"], ["--public-key", missing]):
        done = runner.run("verify", *bad, env=deploy_job)  # bad input: the set, then the plan
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        intact()
        assert not verified_file.exists()
    assert tasks_after_the_build() == [("verify", "failed"), ("verify", "failed")]
    assert report(runner)["failure"]["exit_code"] == 2
    done = runner.run("verify", "--public-key", str(pub), env=deploy_job)
    assert done.returncode == 0, done.stderr
    intact(verdict=False)
    pinned = {"API_VERIFIED_IMAGE_REF": refs["api"], "WORKER_VERIFIED_IMAGE_REF": refs["worker"]}
    assert dotenv(runner, "provenance-verified.env") == pinned
    assert report(runner)["status"] == "ok"

    # A signature that fails the policy (an annotation it doesn't carry), then a good verify.
    done = runner.run(
        "verify", "--public-key", str(pub), "--annotation", "team=nobody", env=deploy_job
    )
    assert done.returncode == 3 and "2 of 2 images failed" in done.stderr, done.stderr
    intact(verdict=False)
    assert not verified_file.exists()
    assert report(runner)["images"]["api"]["tasks"][-1]["status"] == "failed"
    done = runner.run("verify", "--public-key", str(pub), env=deploy_job)
    assert done.returncode == 0, done.stderr
    intact(verdict=False)
    assert dotenv(runner, "provenance-verified.env") == pinned
    assert tasks_after_the_build()[-2:] == [("verify", "failed"), ("verify", "ok")]
    assert report(runner)["status"] == "ok"

    # Elsewhere, with GitLab's variables alone: a failed try, then the retry finds API_IMAGE_REF.
    elsewhere = tmp_path / "deploy"
    elsewhere.mkdir()
    later = Runner(runner.testbed, elsewhere, runner.sigstore)
    done = later.run("verify", "--image-name", "api", "--public-key", missing, env=deploy_job)
    assert done.returncode == 2, done.stderr
    done = later.run("verify", "--image-name", "api", "--public-key", str(pub), env=deploy_job)
    assert done.returncode == 0, done.stderr
    assert "API_IMAGE_REF in the environment" in done.stderr
    assert dotenv(later, "provenance-verified.env") == {"API_VERIFIED_IMAGE_REF": refs["api"]}


def test_one_images_context_for_the_set_is_refused_and_image_is_the_sets_base(
    runner: Runner,
    registry: Registry,
) -> None:
    monorepo(runner, ["api", "worker"])
    other = make_context(runner.cwd / "services" / "api-next")
    with (other / "Dockerfile").open("a") as dockerfile:
        dockerfile.write("LABEL org.example.context=api-next\n")
    env = pipelines.gitlab(runner.testbed)
    base = f"{env['CI_REGISTRY_IMAGE']}/shop"

    # The call that built both images under .../api and then crashed: refused, nothing pushed.
    done = runner.run("build", "--context", "services/api-next", "--image", f"{base}/api", env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("provenance-tasks: ") == 1
    assert (
        "provenance-tasks: --context services/api-next is one image's, but this run works on "
        "every image of provenance.images" in done.stderr
    )
    assert "--only NAME on the command line (images=[NAME] from Python)" in done.stderr
    project = env["CI_PROJECT_PATH"]
    catalog = registry.crane("catalog", runner.testbed.secure_registry).split()
    assert not [repository for repository in catalog if repository.startswith(project)]

    # --only names the image: --context is its, and --image the base it lands under.
    done = runner.run(
        "build", "--only", "api", "--context", "services/api-next", "--image", base, env=env
    )
    assert done.returncode == 0, done.stderr
    said = f"provenance.image {base} is the set's base: images land at {base}/<name>"
    assert done.stderr.count(said) == 1
    tag = env["CI_COMMIT_SHORT_SHA"]
    config = json.loads(registry.crane("config", f"{base}/api:{tag}"))
    assert config["config"]["Labels"]["org.example.context"] == "api-next"
    assert config["config"]["Labels"][TITLE] == "api"
    assert registry.holds_nothing(f"{base}/worker")

    # The whole set: every image under the base, by its name.
    done = runner.run("build", "--image", base, env=env)
    assert done.returncode == 0, done.stderr
    assert said in done.stderr
    for name in ("api", "worker"):
        ref = report(runner)["images"][name]["outputs"]["IMAGE_REF"]
        assert ref.startswith(f"{base}/{name}@sha256:")
        assert registry.tags(f"{base}/{name}") == [tag]
    labels = json.loads(registry.crane("config", f"{base}/api:{tag}"))["config"]["Labels"]
    assert "org.example.context" not in labels  # invoke.yaml's own context again
