"""What later jobs read: a dotenv for GitLab, $GITHUB_OUTPUT lines, and a JSON report of the run.

Outputs are tied to the run that wrote them: a build removes earlier ones when it starts (a build
that then fails leaves none, never the last good one), and every output records the run's id,
the commit and the source repository. `earlier()` hands them back to sign and verify with that
record, and the plan refuses what another commit or repository wrote.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog

#: The report's layout; a reader checks it before trusting a field.
REPORT_SCHEMA = 2
REVISION, SOURCE = "org.opencontainers.image.revision", "org.opencontainers.image.source"


def image_outputs(
    run: Run,
    repository: str,
    digest: str,
    tags: tuple[str, ...],
    published: tuple[str, ...] = (),
    staging_tag: str | None = None,
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
        "PROVENANCE_RUN_ID": run.id,
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


def invalidate(run: Run) -> None:
    """Remove the outputs an earlier run left here: this run's build replaces them, or fails
    and leaves none (a stale IMAGE_REF would get the previous digest signed)."""
    if run.settings.dry_run:
        return  # a dry run changes nothing
    for name in (run.settings.dotenv, run.settings.report):
        if name:
            (run.cwd / name).unlink(missing_ok=True)


def write_dotenv(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def write_github_output(run: Run, values: dict[str, str]) -> None:
    variable = run.ci.output_file_variable
    target = run.environ.get(variable) if variable else None
    if not target:
        return
    with open(target, "a", encoding="utf-8") as out:
        for key, value in values.items():
            out.write(f"{key.lower()}={value}\n")


def report(run: Run, log: RunLog, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    results = {name: _plain(value) for name, value in log.results.items()}
    return {
        "schema": REPORT_SCHEMA,
        "run": {
            "id": run.id,
            "provider": run.ci.provider,
            "commit": run.ci.labels.get(REVISION),
            "source": run.ci.labels.get(SOURCE),
        },
        "provider": run.ci.provider,
        "steps": [
            {"name": r.name, "status": r.status, "duration_s": round(r.duration_s, 3)}
            for r in log.steps
        ],
        **results,
        **(extra or {}),
    }


def write_all(
    run: Run, log: RunLog, values: dict[str, str] | None, extra: dict[str, Any] | None = None
) -> None:
    """Write the dotenv, $GITHUB_OUTPUT and the report (redacted); a dry run writes none."""
    s = run.settings
    if s.dry_run:
        return
    if values and s.dotenv:
        write_dotenv(run.cwd / s.dotenv, values)
        write_github_output(run, values)
    if s.report:
        data = report(run, log, {"outputs": values or {}, **(extra or {})})
        text = run.redactor.redact(json.dumps(data, indent=2, default=str))
        (run.cwd / s.report).write_text(text + "\n")


def earlier(run: Run) -> Earlier | None:
    """IMAGE_REF and its run's record from this folder's dotenv or report, else from the
    environment (GitLab hands later jobs the dotenv of every earlier job as variables: a job
    that built here itself must use its own, not another job's); None when there is none."""
    s = run.settings
    if s.dotenv and (run.cwd / s.dotenv).is_file():
        values = dict(
            line.split("=", 1)
            for line in (run.cwd / s.dotenv).read_text().splitlines()
            if "=" in line
        )
        if values.get("IMAGE_REF"):
            return Earlier(values["IMAGE_REF"], values.get("PROVENANCE_COMMIT") or None,
                           values.get("PROVENANCE_SOURCE") or None, s.dotenv, values)  # fmt: skip
    if s.report and (run.cwd / s.report).is_file():
        try:
            data = json.loads((run.cwd / s.report).read_text())
            found = dict(data["outputs"])
            return Earlier(str(found["IMAGE_REF"]), found.get("PROVENANCE_COMMIT") or None,
                           found.get("PROVENANCE_SOURCE") or None, s.report, found)  # fmt: skip
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
    env = run.environ
    if env.get("IMAGE_REF"):
        return Earlier(env["IMAGE_REF"], env.get("PROVENANCE_COMMIT") or None,
                       env.get("PROVENANCE_SOURCE") or None, "IMAGE_REF in the environment",
                       env)  # fmt: skip
    return None


def _plain(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value
