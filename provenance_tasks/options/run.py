"""The settings of the run: registry and tools, retries, many images, outputs and behaviour."""

from __future__ import annotations

from provenance_tasks.options.option import (
    BUILDS,
    EVERY_TASK,
    ON_A_DIGEST,
    PROMOTES,
    RUNS,
    WHOLE_JOB,
    Option,
)

RUN: tuple[Option, ...] = (
    # registry and tools
    Option(
        key="registry",
        default=None,
        help="registry to log in to (default: from CI)",
        tasks=EVERY_TASK,
    ),
    Option(
        key="username",
        default=None,
        help="registry user (default: from CI)",
        tasks=EVERY_TASK,
    ),
    Option(
        key="password_env",
        default=None,
        help="name of the variable holding the registry password",
        tasks=EVERY_TASK,
    ),
    Option(
        key="docker_config",
        default=None,
        help="docker config folder for this run's logins (default: a new private one)",
        tasks=EVERY_TASK,
    ),
    Option(
        key="keep_docker_config",
        default=False,
        help="keep the private docker config folder (and its login) at the end",
        tasks=WHOLE_JOB,
    ),
    Option(
        key="docker_host",
        default=None,
        help="the docker engine to use (DOCKER_HOST)",
    ),
    Option(
        key="cosign",
        default="cosign",
        help="the cosign binary (a name on PATH or a path)",
    ),
    Option(
        key="buildx",
        default=None,
        help=(
            "the buildx plugin binary to run (default: found where docker finds its plugins); "
            "docker: `docker buildx`, through a docker that is a wrapper (sudo, a shim)"
        ),
    ),
    Option(
        key="timeout",
        default=120,
        help="seconds for each cosign attempt (never past the retry budget)",
    ),
    # retries of every registry call (see provenance_tasks/retry.py and the README's worst case)
    Option(
        key="retry_attempts",
        default=8,
        help="attempts of one registry call, the first included",
    ),
    Option(
        key="retry_budget",
        default=300,
        help="seconds for all attempts of one call",
    ),
    Option(
        key="retry_wait",
        default=1,
        help="seconds before the second attempt, doubling up to 30",
    ),
    Option(
        key="rate_limit_wait",
        default=5,
        help="seconds before the attempt after a 429, doubling up to 30",
    ),
    Option(
        key="sigstore_jobs",
        default=8,
        help="signing cosign processes (sign, attest) at once in a run, every image's "
        "(0: no bound)",
    ),
    Option(
        key="rekor_writes_per_minute",
        default=400,
        help="transparency-log entries a run writes in any minute; public Rekor takes about 500 "
        "(0: no bound)",
    ),
    # many images (steps/sets/run.py)
    Option(
        key="images",
        default=None,
        help=(
            "the images of a monorepo: a list of mappings, each a name and its own context, file, "
            "image, tags, platforms, build_args, target, annotations, labels, predicates "
            "(invoke.yaml only)"
        ),
    ),
    Option(
        key="images_file",
        default=None,
        help="a YAML file holding the same list as provenance.images",
    ),
    Option(
        key="only",
        default=[],
        help="run only this image of provenance.images (repeatable; default: all)",
        tasks=RUNS,
    ),
    Option(
        key="image_name",
        default=None,
        help=(
            "the image of provenance.images to work on: its IMAGE_REF from the report or the dotenv"
            " (<NAME>_IMAGE_REF)"
        ),
        tasks=ON_A_DIGEST,
    ),
    Option(
        key="jobs",
        default=0,
        help="images worked on at once (default: the CPU count)",
        tasks=RUNS,
    ),
    Option(
        key="bake",
        default=True,
        help=(
            "build each image of a set in its own buildx call, at most jobs at a time (default: all"
            " in one buildx bake)"
        ),
        tasks=BUILDS,
        flag="no_bake",
    ),
    Option(
        key="fail_fast",
        default=False,
        help="start no new image after one failed (default: run every image)",
        tasks=RUNS,
    ),
    Option(
        key="shard",
        default=None,
        help=(
            "I/N: work on share I of N of the images, decided by name (default: GitLab's "
            "CI_NODE_INDEX/CI_NODE_TOTAL under parallel: N)"
        ),
        tasks=RUNS,
    ),
    Option(
        key="docker_context",
        default=None,
        help="the docker context to build on (another engine, e.g. over ssh)",
    ),
    # outputs and behaviour
    Option(
        key="dry_run",
        default=False,
        help="print the exact commands, secrets redacted, and change nothing",
        tasks=EVERY_TASK,
    ),
    Option(
        key="report",
        default="provenance-report.json",
        help="path of the JSON report (default: provenance-report.json)",
        tasks=RUNS | PROMOTES,
    ),
    Option(
        key="dotenv",
        default="provenance.env",
        help="path of the dotenv for later jobs",
    ),
    Option(
        key="verified_dotenv",
        default="provenance-verified.env",
        help=(
            "where verify writes what it verified (VERIFIED_IMAGE_REF; a set's "
            "<NAME>_VERIFIED_IMAGE_REF), for a deploy job to pin"
        ),
    ),
    Option(
        key="log_format",
        default="auto",
        help="auto, console or json",
        tasks=EVERY_TASK,
    ),
)
