"""One version, pinned everywhere a user meets it, and the release that writes it."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import yaml

import provenance_tasks

ROOT = Path(__file__).parents[2]
PINNED = (
    "pyproject.toml",
    "provenance_tasks/__init__.py",
    "action.yml",
    "CHANGELOG.md",
    "ci/release",
    *(f"templates/{p.name}" for p in (ROOT / "templates").glob("*.yml")),
)
TEMPLATES = sorted((ROOT / "templates").glob("*.yml"))
AUTHOR = {
    "GIT_AUTHOR_NAME": "r",
    "GIT_AUTHOR_EMAIL": "r@example.com",
    "GIT_COMMITTER_NAME": "r",
    "GIT_COMMITTER_EMAIL": "r@example.com",
    "HOME": "/nonexistent",
}
JOB_IMAGE = "registry.example.com/platform/provenance-tasks/job"
DIGEST = "sha256:" + "a" * 64


def header(template: Path) -> dict[str, Any]:
    return yaml.safe_load(template.read_text().split("\n---\n", 1)[0])  # type: ignore[no-any-return]


def pins(root: Path, name: str) -> dict[str, str]:
    """Each file's default of input `name`: the action's and each component's."""
    action = yaml.safe_load((root / "action.yml").read_text())
    found = {"action.yml": action["inputs"][name]["default"]}
    for template in sorted((root / "templates").glob("*.yml")):
        found[template.name] = header(template)["spec"]["inputs"][name]["default"]
    return found


def released(root: Path) -> list[str]:
    """The versions CHANGELOG.md dates: each is a release ci/release made."""
    return re.findall(r"^## (\d+\.\d+\.\d+) - ", (root / "CHANGELOG.md").read_text(), re.M)


def release(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "ci/release", *args],
        cwd=root,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "PYTEST": "true", **AUTHOR},
    )


def git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, env=AUTHOR)
    assert done.returncode == 0, done.stderr
    return done.stdout


def a_copy(tmp_path: Path, version: str) -> Path:
    """A throwaway repository of the pinned files, __version__ set to `version` and committed:
    the commit whose default-branch pipeline built the job image."""
    for name in PINNED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    init = tmp_path / "provenance_tasks/__init__.py"
    init.write_text(re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text()))
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-qm", f"Start {version}")
    return tmp_path


def check_job_image_pins(root: Path) -> None:
    """Until a release pins the tool's own job image by digest, the components run on
    docker:28-cli (installing cosign and the tool, unpinned) and the action on the runner (an
    empty job_image); from the first release on, every default is one REPOSITORY@sha256:..."""
    found = pins(root, "job_image")
    if not released(root):
        assert found == {
            "action.yml": "",
            **{n: "docker:28-cli" for n in found if n != "action.yml"},
        }
    else:
        assert len(set(found.values())) == 1, found
        assert re.fullmatch(r"[a-z0-9.:/-]+/[a-z0-9._/-]+@sha256:[0-9a-f]{64}", found["action.yml"])


def test_the_version_is_written_once_and_hatch_reads_it_there() -> None:
    """pyproject.toml names no version: hatch takes __version__ (the wheel's metadata is
    checked against it in test_packaging)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["hatch"]["version"]["path"] == "provenance_tasks/__init__.py"


def test_the_components_and_the_action_pin_one_version_the_package_is_or_precedes() -> None:
    """__version__ may be ahead of the pins: it is set to the next version before its job image
    is built (ci/release says why); until then the pins name the last release."""
    (pinned,) = set(pins(ROOT, "version").values())
    version = provenance_tasks.__version__
    assert pinned == version or (pinned in released(ROOT) and version not in released(ROOT))


def test_the_job_image_is_docker_cli_until_a_release_pins_it_by_digest() -> None:
    # The helper asserts: docker:28-cli and an empty action default before any release tag,
    # REPOSITORY@sha256 pins in every file after one (it fails on a tag-only pin).
    check_job_image_pins(ROOT)


def test_the_release_writes_the_version_and_the_digest_everywhere_and_tags_it(
    tmp_path: Path,
) -> None:
    root = a_copy(tmp_path, "9.8.7")
    done = release(root, "9.8.7", "--digest", DIGEST, "--image", JOB_IMAGE)
    assert done.returncode == 0, done.stderr
    assert set(pins(root, "version").values()) == {"9.8.7"}
    assert set(pins(root, "job_image").values()) == {f"{JOB_IMAGE}@{DIGEST}"}
    check_job_image_pins(root)
    changelog = (root / "CHANGELOG.md").read_text()
    assert re.search(r"## Unreleased\n\n## 9\.8\.7 - \d{4}-\d\d-\d\d\n", changelog)
    assert git(root, "tag").split() == ["9.8.7"]
    assert git(root, "status", "--porcelain") == ""
    assert f"{JOB_IMAGE}@{DIGEST}" in git(root, "log", "-1", "--format=%B")

    # The next release keeps the repository the last one pinned.
    init = root / "provenance_tasks/__init__.py"
    init.write_text(init.read_text().replace('"9.8.7"', '"9.9.0"'))
    git(root, "commit", "-qam", "Start 9.9.0")
    other = "sha256:" + "b" * 64
    done = release(root, "9.9.0", "--digest", other)
    assert done.returncode == 0, done.stderr
    assert set(pins(root, "job_image").values()) == {f"{JOB_IMAGE}@{other}"}
    assert git(root, "tag").split() == ["9.8.7", "9.9.0"]


def test_the_release_dry_run_shows_every_pin_and_changes_nothing(tmp_path: Path) -> None:
    root = a_copy(tmp_path, "9.8.7")
    head = git(root, "rev-parse", "HEAD")
    done = release(root, "9.8.7", "--digest", DIGEST, "--image", JOB_IMAGE, "--dry-run")
    assert done.returncode == 0, done.stderr
    for name in ("action.yml", "CHANGELOG.md", *(f"templates/{p.name}" for p in TEMPLATES)):
        assert f"+++ b/{name}" in done.stdout, name
    assert done.stdout.count(f'+      default: "{JOB_IMAGE}@{DIGEST}"') == len(TEMPLATES)
    assert f'+    default: "{JOB_IMAGE}@{DIGEST}"' in done.stdout  # the action's
    assert "would commit" in done.stdout and "tag 9.8.7" in done.stdout
    assert git(root, "status", "--porcelain") == "" and git(root, "tag") == ""
    assert git(root, "rev-parse", "HEAD") == head


def test_the_release_refuses_bad_input_with_exit_2_and_changes_nothing(tmp_path: Path) -> None:
    root = a_copy(tmp_path, "9.8.7")
    image = ["--image", JOB_IMAGE]
    for args, said in (
        (["9.8.7", *image], "--digest is required"),
        (["9.8.7", "--digest", "sha256:abc", *image], "not a digest: sha256:abc"),
        (["9.8.7", "--digest", DIGEST.upper(), *image], "not a digest"),
        (["9.8.7", "--digest", "a" * 64, *image], "not a digest"),
        (["9.8.7", "--digest", f"{JOB_IMAGE}@{DIGEST}", *image], "not a digest"),
        (["9.8.7", "--digest", DIGEST], "no job image is pinned yet"),
        (["9.8.7", "--digest", DIGEST, "--image", f"{JOB_IMAGE}:1"], "not a repository"),
        (["1.0", "--digest", DIGEST, *image], "not a version"),
        (["9.8.8", "--digest", DIGEST, *image], "__version__ is 9.8.7"),
    ):
        done = release(root, *args)
        assert done.returncode == 2 and said in done.stderr, (args, done.stderr)
    assert git(root, "status", "--porcelain") == "" and git(root, "tag") == ""
    assert release(root, "9.8.7", "--digest", DIGEST, *image).returncode == 0
    again = release(root, "9.8.7", "--digest", DIGEST)
    assert again.returncode == 2 and "tag 9.8.7 exists already" in again.stderr


def test_one_tag_scheme_everywhere_a_release_is_named() -> None:
    """A release is tagged X.Y.Z (ci/release), for GitLab's catalog and the action alike: no
    file names it vX.Y.Z."""
    pinned = re.compile(r"provenance-tasks(?:/[\w-]+)?@v\d")
    for path in [*ROOT.glob("*.md"), ROOT / "action.yml", *ROOT.glob("templates/*.yml")]:
        assert not pinned.search(path.read_text()), path
    for path in (ROOT / "examples").rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".yaml", ".md", ".py"):
            assert not pinned.search(path.read_text()), path
