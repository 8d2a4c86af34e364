"""What ships: the wheel holds the package and nothing of the test bed, and a consumer's
`--list` shows only the provenance tasks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import provenance_tasks

ROOT = Path(__file__).parents[2]


def test_the_wheel_holds_no_test_bed(tmp_path: Path) -> None:
    subprocess.run(
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
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("provenance_tasks-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "provenance_tasks/tasks/__init__.py" in names
    assert "provenance_tasks/sigstore.py" in names
    assert not [n for n in names if "testbed" in n or n.startswith("tests/")], names
    assert not [n for n in names if n.endswith((".js", ".json")) and "dist-info" not in n]


def test_a_consumers_list_holds_no_test_bed_task(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "provenance_tasks.cli", "--list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "build-sign-verify" in done.stdout
    assert "testbed" not in done.stdout


DEBIAN_PYTHON = Path("/usr/bin/python3")  # Debian 12's 3.11: the oldest Python we claim


def test_the_wheel_installs_into_a_clean_venv_of_the_oldest_python_we_claim(
    tmp_path: Path,
) -> None:
    import tomllib

    claimed = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert claimed == ">=3.11"
    if not DEBIAN_PYTHON.exists():
        pytest.skip("not a Debian machine: no /usr/bin/python3")
    version = subprocess.run(
        [str(DEBIAN_PYTHON), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert version.strip() == "(3, 11)", "the oldest Python claimed is the one tested"
    wheelhouse = ROOT / ".wheelhouse"
    if not wheelhouse.is_dir():
        pytest.fail("no .wheelhouse: ci/test makes it (the dependencies, installed offline here)")
    subprocess.run(
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
            str(tmp_path),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("provenance_tasks-*.whl")
    with zipfile.ZipFile(wheel) as archive:  # the version hatch read, and the license shipped
        names = archive.namelist()
        metadata = archive.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        licence = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        assert licence and b"Apache License" in archive.read(licence[0])
    assert f"Version: {provenance_tasks.__version__}\n".encode() in metadata
    assert b"License-Expression: Apache-2.0" in metadata
    venv = tmp_path / "venv"
    subprocess.run([str(DEBIAN_PYTHON), "-m", "venv", str(venv)], check=True, capture_output=True)
    installed = subprocess.run(
        [
            str(venv / "bin" / "pip"),
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            str(wheel),
        ],
        capture_output=True,
        text=True,
    )
    assert installed.returncode == 0, installed.stderr
    script = venv / "bin" / "provenance-tasks"
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True, cwd=tmp_path)
    assert done.stdout.strip() == f"provenance-tasks {provenance_tasks.__version__}"
    listed = subprocess.run([str(script), "--list"], capture_output=True, text=True, cwd=tmp_path)
    assert "build-sign-verify" in listed.stdout and "testbed" not in listed.stdout
