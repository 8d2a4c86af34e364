"""What later jobs read: a dotenv for GitLab, $GITHUB_OUTPUT lines, and a JSON report of the run.

Outputs are tied to the run that wrote them: a build removes earlier ones when it starts (a build
that then fails leaves none, never the last good one), and every output records the run's id,
the commit and the source repository. `earlier()` hands them back to sign and verify with that
record, and the plan refuses what another commit or repository wrote.

One report per run: every task writes it, failed or not (for GitLab's `artifacts: when: always`),
and a task that continues a run (build --stage, then sign, verify, publish, even in a later job
that was handed the report) adds its section to that run's report instead of replacing it.
A task that fails only adds its failure: to whichever report is here, never replacing what an
earlier task wrote, and it leaves the dotenv alone, so the retry finds the build's outputs.
Every file is written whole or not at all (a temporary file, then renamed): a killed run never
leaves half a report, or an empty dotenv.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from provenance_tasks.steps.report_merge import REPORT_SCHEMA, read_report, updated_report
from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog

REVISION, SOURCE = "org.opencontainers.image.revision", "org.opencontainers.image.source"


def image_outputs(
    run: Run,
    repository: str,
    digest: str,
    tags: tuple[str, ...],
    published: tuple[str, ...] = (),
    staging_tag: str | None = None,
    run_id: str | None = None,
) -> dict[str, str]:
    """The values later jobs read: the image, the tags to publish and those published, and
    the run that wrote them (its id, commit and source repository)."""
    signed = {a.key: a.value for a in run.ci.annotations}
    own = {var: signed[key] for key, var in run.ci.own_annotations.items() if key in signed}
    return {
        "IMAGE_URI": f"{repository}:{tags[0]}" if tags else repository,
        "IMAGE_DIGEST": digest,
        "IMAGE_REF": f"{repository}@{digest}",
        "IMAGE_TAGS": ",".join(tags),
        "IMAGE_PUBLISHED": ",".join(published),
        "PROVENANCE_RUN_ID": run_id or run.id,  # a task continuing a run keeps its id
        "PROVENANCE_COMMIT": run.ci.labels.get(REVISION, ""),
        "PROVENANCE_SOURCE": run.ci.labels.get(SOURCE, ""),
        **own,  # the signing job's own values, for a later job's verify
        # `build --stage` where only a tag could be pushed: the publish task removes it.
        **({"IMAGE_STAGING_TAG": staging_tag} if staging_tag else {}),
    }


@dataclass(frozen=True)
class Earlier:
    """IMAGE_REF as an earlier run left it, with the record of that run."""

    ref: str
    commit: str | None
    source: str | None
    where: str  # the environment (GitLab's dotenv artifacts), the dotenv, or the report
    values: Mapping[str, str] = field(default_factory=dict)  # every value it recorded
    # False: a set's dotenv, which holds each image's ref but not the signing job's own
    # values (they would collide between the jobs of a parallel: N); the report holds them.
    complete: bool = True

    @property
    def run_id(self) -> str | None:
        return self.values.get("PROVENANCE_RUN_ID") or None


@dataclass(frozen=True)
class Rebuild:
    """This commit was built here before: the digest it had then, against this build's."""

    previous_digest: str
    previous_run: str | None
    digest: str

    reproducible: bool = False  # this build was asked to reproduce the digest

    @property
    def note(self) -> str:
        if self.previous_digest == self.digest:
            return "reproduced: the same digest"
        return REBUILT_ANYWAY if self.reproducible else REBUILT

    def as_dict(self) -> dict[str, Any]:
        return {
            "previous_digest": self.previous_digest,
            "previous_run": self.previous_run,
            "same_digest": self.previous_digest == self.digest,
            "note": self.note,
        }


REBUILT = (
    "the same commit built a different digest: BuildKit's provenance and the layers' times "
    "differ between builds (provenance.reproducible makes them equal); this digest was signed "
    "and verified on its own"
)
REBUILT_ANYWAY = (
    "the same commit built a different digest although provenance.reproducible was on: the "
    "earlier build wasn't reproducible, or its inputs differed (build args, platforms, a base "
    "image, a changed file); this digest was signed and verified on its own"
)


class Outputs:
    """Where a run's outputs come from and go: this folder's dotenv, report and verified dotenv,
    or the environment a CI hands a later job. The steps reach them through `tools.outputs`; an
    image of a set answers for the set instead (steps/sets/outputs.py's ImageOutputs)."""

    def earlier(self, run: Run, *, here_only: bool = False) -> Earlier | None:
        return earlier(run, here_only=here_only)

    def invalidate(self, run: Run) -> Earlier | None:
        return invalidate(run)

    def forget_verified(self, run: Run) -> None:
        forget_verified(run)

    def write_verified(self, run: Run, values: dict[str, str]) -> None:
        write_verified(run, values)

    def write(self, run: Run, log: RunLog, values: dict[str, str]) -> None:
        write_outputs(run, log, values)


FOLDER_OUTPUTS = Outputs()


def invalidate(run: Run) -> Earlier | None:
    """Remove the outputs an earlier run left here: this run's build replaces them, or fails
    and leaves none (a stale IMAGE_REF would get the previous digest signed). Returns what they
    said, for `rebuild()` to compare with."""
    before = earlier(run, here_only=True)
    if run.settings.dry_run:
        return before  # a dry run changes nothing
    for name in (run.settings.dotenv, run.settings.report):
        if name:
            (run.cwd / name).unlink(missing_ok=True)
    return before


def forget_verified(run: Run) -> None:
    """A verify starts: what an earlier one verified is removed, so a verify that fails leaves
    no digest for a deploy job to pin."""
    if run.settings.verified_dotenv and not run.settings.dry_run:
        (run.cwd / run.settings.verified_dotenv).unlink(missing_ok=True)


def write_verified(run: Run, values: dict[str, str]) -> None:
    """What this verify verified, by digest, for a deploy job (a set's: the run writes it)."""
    if run.settings.verified_dotenv and not run.settings.dry_run:
        write_dotenv(run.cwd / run.settings.verified_dotenv, values)


def write_dotenv(path: Path, values: Mapping[str, str]) -> None:
    """`values` as KEY=value lines; no values, no file (an empty one would say nothing was
    verified as if something had been)."""
    if not values:
        path.unlink(missing_ok=True)
        return
    write_whole(path, "".join(f"{k}={v}\n" for k, v in values.items()))


def write_whole(path: Path, text: str) -> None:
    """`text` in `path`, whole or not at all: written beside it, then renamed over it, so a run
    killed halfway (or a full disk) leaves the old file or the new one, never an empty one."""
    temp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename: a power cut leaves no empty file
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_github_output(run: Run, values: dict[str, str]) -> None:
    variable = run.ci.output_file_variable
    target = run.environ.get(variable) if variable else None
    if not target:
        return
    with open(target, "a", encoding="utf-8") as out:
        for key, value in values.items():
            out.write(f"{key.lower()}={value}\n")


def write_outputs(run: Run, log: RunLog, values: dict[str, str]) -> None:
    """The dotenv and $GITHUB_OUTPUT; the report carries `values` too. A dry run writes none."""
    log.outputs = values
    if run.settings.dry_run or not run.settings.dotenv:
        return
    write_dotenv(run.cwd / run.settings.dotenv, values)
    write_github_output(run, values)


def task_report(
    run: Run,
    log: RunLog,
    task: str,
    error: BaseException | None,
    *,
    tasks: list[dict[str, Any]] | None = None,
    step_tasks: Sequence[str] = (),
) -> dict[str, Any]:
    """What one task (or a composition's calls: `tasks`, and the call of each step in
    `step_tasks`) did: its steps, what they returned, the outputs, and how it ended."""
    summary = log.summarize(error)
    failure = summary.as_event().get("failure")
    steps = [
        {
            "task": step_tasks[i] if i < len(step_tasks) else task,
            "name": r.name,
            "status": r.status,
            "duration_s": round(r.duration_s, 3),
        }
        for i, r in enumerate(log.steps)
    ]
    results = {name: _plain(value) for name, value in log.results.items()}
    return {
        "schema": REPORT_SCHEMA,
        "run": {
            "id": log.run_id or run.id,  # the run continued, else this one
            "provider": run.ci.provider,
            "detected": run.ci.detected,
            "commit": run.ci.labels.get(REVISION),
            "source": run.ci.labels.get(SOURCE),
        },
        "provider": run.ci.provider,
        "status": summary.status,
        "failure": failure,
        "tasks": tasks
        or [{"task": task, "id": run.id, "status": summary.status, "failure": failure}],
        "steps": steps,
        **results,
        **({"registry_traffic": log.traffic.read()} if log.traffic is not None else {}),
        **({"outputs": log.outputs} if log.outputs is not None else {}),
    }


def write_report(
    run: Run, log: RunLog, task: str, error: BaseException | None, **calls: Any
) -> None:
    """The run's report, written whether the task passed or failed (redacted; a dry run writes
    none). A task that continues the run whose report this folder holds adds its section there;
    a failed one adds its failure to whichever report is here (see `updated_report`)."""
    s = run.settings
    if s.dry_run or not s.report:
        return
    path = run.cwd / s.report
    mine = task_report(run, log, task, error, **calls)
    data = updated_report(read_report(path), mine, task, log.run_id)
    if data is None:
        log.warning(
            f"{s.report} is left as it was: it is no report this version can add this "
            f"{task}'s failure to (the log above has it)"
        )
        return
    text = run.redactor.redact(json.dumps(data, indent=2, default=str))
    write_whole(path, text + "\n")


def earlier(run: Run, *, here_only: bool = False) -> Earlier | None:
    """IMAGE_REF and its run's record from this folder's dotenv or report, else from the
    environment (GitLab hands later jobs the dotenv of every earlier job as variables: a job
    that built here itself must use its own, not another job's); None when there is none."""
    s = run.settings
    if run.handed.get("") is not None:
        return run.handed[""]  # this run's own result, handed in
    if s.dotenv and (run.cwd / s.dotenv).is_file():
        values = dict(
            line.split("=", 1)
            for line in (run.cwd / s.dotenv).read_text().splitlines()
            if "=" in line
        )
        if values.get("IMAGE_REF"):
            return Earlier(
                values["IMAGE_REF"],
                values.get("PROVENANCE_COMMIT") or None,
                values.get("PROVENANCE_SOURCE") or None,
                s.dotenv,
                values,
            )
    if s.report and (run.cwd / s.report).is_file():
        try:
            data = json.loads((run.cwd / s.report).read_text())
            found = dict(data["outputs"])
            return Earlier(
                str(found["IMAGE_REF"]),
                found.get("PROVENANCE_COMMIT") or None,
                found.get("PROVENANCE_SOURCE") or None,
                s.report,
                found,
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    env = run.environ
    if env.get("IMAGE_REF") and not here_only:
        return Earlier(
            env["IMAGE_REF"],
            env.get("PROVENANCE_COMMIT") or None,
            env.get("PROVENANCE_SOURCE") or None,
            "IMAGE_REF in the environment",
            env,
        )
    return None


def rebuild(run: Run, before: Earlier | None, repository: str, digest: str) -> Rebuild | None:
    """This commit's earlier build here (`before`, read before the outputs were removed), if
    it was built to the same repository; said in the log, and kept for the report."""
    commit = run.ci.labels.get(REVISION)
    if before is None or not commit or before.commit != commit:
        return None
    previous_repository, _, previous_digest = before.ref.partition("@")
    if previous_repository != repository or not previous_digest:
        return None
    return Rebuild(previous_digest, before.run_id, digest, run.settings.reproducible)


def _plain(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value
