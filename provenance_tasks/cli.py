"""The `provenance-tasks` console script: the collection without a tasks.py.

    pip install provenance-tasks && provenance-tasks build-sign-verify

It reads the same settings as the tasks: invoke.yaml (or .yml/.json/.py) in the working directory,
INVOKE_PROVENANCE_* variables, then flags.
"""

from __future__ import annotations

import os
import sys
import threading

from invoke.program import Program

from provenance_tasks import __version__

# Written by the job image's build (images/job/check-versions): "TOOL VERSION" lines, the versions
# Debian's packages have (Debian's cosign says "GitVersion: devel"), each checked at the build.
JOB_IMAGE_VERSIONS = "/usr/share/provenance-tasks/versions"


class ProvenanceProgram(Program):
    def print_version(self) -> None:
        """The tool's version; in the job image, every tool's too (a file read, no import)."""
        super().print_version()
        try:
            with open(JOB_IMAGE_VERSIONS, encoding="utf-8") as listed:
                lines = [line.strip() for line in listed if line.strip()]
        except OSError:  # not the job image: the tool's own version only, as ever
            return
        print("in the job image, each checked at its build:")
        for line in lines:
            if not line.startswith(f"{self.name} "):  # said above
                print(f"  {line}")

    def parse_collection(self) -> None:
        super().parse_collection()
        # A bundled namespace has no tasks.py, so invoke finds no project config: use the cwd's.
        self.config.set_project_location(os.getcwd())
        self.config.load_project(merge=False)


def main() -> None:
    from provenance_tasks.tasks import ns

    program = ProvenanceProgram(
        namespace=ns, version=__version__, name="provenance-tasks", binary="provenance-tasks"
    )
    program.run()


def console() -> None:
    """The console script: main(), then out at once.

    The interpreter's own way out tears every module and object down, 40-70 ms after a run on a
    small CI machine, and buys nothing once the run has closed what it made: its tools removed
    their folders, its pools joined their threads, and the streams are flushed here. A bug's
    traceback still goes the interpreter's way, as does an exit with a thread still running,
    which the interpreter waits for."""
    try:
        main()
        code: object = 0
    except SystemExit as exc:
        code = exc.code
    if any(
        t.is_alive() and not t.daemon
        for t in threading.enumerate()
        if t is not threading.main_thread()
    ):
        sys.exit(code)  # type: ignore[arg-type]  # whatever it is, as the interpreter takes it
    if code is not None and not isinstance(code, int):  # sys.exit("message"), as Python does
        print(code, file=sys.stderr)
        code = 1
    flushed = True
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):  # a closed pipe or file
            flushed = False
    # 120: the interpreter's code when flushing the standard streams fails at exit.
    os._exit((code or 0) if flushed else 120)


if __name__ == "__main__":
    console()
