"""The job image's build context for the project's own pipeline (the job-image-context job of
.gitlab-ci.yml): debs/ (sid's cosign 3 and buildx) and wheels/ (the tool's wheel and its
dependencies' cp313 wheels) beside images/job's files, and the versions its build checks, as the
dotenv the component's job reads (INVOKE_PROVENANCE_BUILD_ARGS). Nothing is built here: the
component builds, signs, attests and verifies. tests.testbed.jobimage gathers it all, as it does
for the test bed's own build.

    python -m tests.testbed.job_image_context FOLDER DOTENV [--base REF]

--base: the base the build starts from (default: the Dockerfile's, debian:trixie-slim), e.g. the
test bed's mmdebstrap trixie.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from tests.testbed import jobimage

USAGE = "usage: python -m tests.testbed.job_image_context FOLDER DOTENV [--base REF]"


def write(folder: Path, dotenv: Path, base: str | None = None) -> dict[str, str]:
    """debs/ and wheels/ into `folder`, the build arguments into `dotenv`; those arguments."""
    with tempfile.TemporaryDirectory(prefix="job-image-context-") as scratch:
        inputs = jobimage.gather(Path(scratch))
        made = jobimage.context(inputs, Path(scratch) / "context")
        for part in ("debs", "wheels"):
            shutil.rmtree(folder / part, ignore_errors=True)
            shutil.copytree(made / part, folder / part)
    args = {**({"BASE": base} if base else {}), **inputs.build_args}
    joined = ",".join(f"{name}={value}" for name, value in args.items())
    dotenv.write_text(f"INVOKE_PROVENANCE_BUILD_ARGS={joined}\n")
    return args


def main(argv: list[str]) -> int:
    base = None
    if "--base" in argv:
        at = argv.index("--base")
        base = argv[at + 1] if at + 1 < len(argv) else ""
        argv = argv[:at] + argv[at + 2 :]
    if len(argv) != 2 or base == "" or any(a.startswith("-") for a in argv):
        print(USAGE, file=sys.stderr)
        return 2
    args = write(Path(argv[0]), Path(argv[1]), base)
    print(f"job image context in {argv[0]}; build arguments in {argv[1]}:")
    for name, value in args.items():
        print(f"  {name}={value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
