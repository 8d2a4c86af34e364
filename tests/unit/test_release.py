"""One version, pinned everywhere a user meets it, and the release that writes it."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from pathlib import Path

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


def versions(root: Path) -> dict[str, str]:
    found = {
        "pyproject": tomllib.loads((root / "pyproject.toml").read_text())["project"]["version"],
        "__version__": re.search(
            r'__version__ = "(.+)"', (root / "provenance_tasks/__init__.py").read_text()
        )[1],  # type: ignore[index]
        "action.yml": yaml.safe_load((root / "action.yml").read_text())["inputs"]["version"][
            "default"
        ],
    }
    for template in sorted((root / "templates").glob("*.yml")):
        header = yaml.safe_load(template.read_text().split("\n---\n", 1)[0])
        found[template.name] = header["spec"]["inputs"]["version"]["default"]
    return found


def test_the_package_the_components_and_the_action_pin_one_version() -> None:
    found = versions(ROOT)
    assert set(found.values()) == {provenance_tasks.__version__}, found


def test_the_release_writes_the_version_everywhere_and_tags_it(tmp_path: Path) -> None:
    for name in PINNED:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    git = ["git", "-c", "user.email=r@example.com", "-c", "user.name=r"]
    for argv in (["git", "init", "-q"], ["git", "add", "-A"], [*git, "commit", "-qm", "x"]):
        subprocess.run(argv, cwd=tmp_path, check=True, capture_output=True)
    done = subprocess.run(
        ["bash", "ci/release", "9.8.7"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "PYTEST": "true",
            "GIT_AUTHOR_NAME": "r",
            "GIT_AUTHOR_EMAIL": "r@e.com",
            "GIT_COMMITTER_NAME": "r",
            "GIT_COMMITTER_EMAIL": "r@e.com",
        },
    )
    assert done.returncode == 0, done.stderr
    assert set(versions(tmp_path).values()) == {"9.8.7"}
    changelog = (tmp_path / "CHANGELOG.md").read_text()
    assert re.search(r"## Unreleased\n\n## 9\.8\.7 - \d{4}-\d\d-\d\d\n", changelog)
    tags = subprocess.run(["git", "tag"], cwd=tmp_path, capture_output=True, text=True).stdout
    assert tags.split() == ["9.8.7"]
    for bad, said in (("1.0", "not a version"), ("9.8.7", "tag 9.8.7 exists already")):
        again = subprocess.run(
            ["bash", "ci/release", bad], cwd=tmp_path, capture_output=True, text=True
        )
        assert again.returncode == 2 and said in again.stderr
