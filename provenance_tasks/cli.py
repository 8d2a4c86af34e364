"""The `provenance-tasks` console script: the collection without a tasks.py.

    pip install provenance-tasks && provenance-tasks build-sign-verify

It reads the same settings as the tasks: invoke.yaml (or .yml/.json/.py) in the working directory,
INVOKE_PROVENANCE_* variables, then flags.
"""

from __future__ import annotations

import os

from invoke.program import Program

from provenance_tasks import __version__


class ProvenanceProgram(Program):
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


if __name__ == "__main__":
    main()
