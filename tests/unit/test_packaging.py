"""What ships: the wheel holds the package and nothing of the test bed, and a consumer's
`--list` shows only the provenance tasks."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_the_wheel_holds_no_test_bed(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "--quiet", "--wheel-dir", str(tmp_path)],
        check=True,
        capture_output=True,
    )  # fmt: skip
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
