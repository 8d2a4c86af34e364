"""The outputs of a set of images: one report, a section per image, and a dotenv GitLab takes.

The report is the carrier: each image's section holds everything a single image's report holds.
A dotenv is small by nature (GitLab caps one at 5 KB and, on GitLab.com Free, 50 variables; older
instances 20), so it holds the run's record, the report's path, and `<NAME>_IMAGE_REF` per image:
never the signing job's own values, which the jobs of a `parallel: N` would overwrite in each
other's when GitLab merges their dotenvs. The jobs of a shard write `provenance-<I>.env` and
`provenance-report-<I>.json`, so no job's files replace another's; a later job reads them all.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance_tasks.steps import outputs, report_merge
from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog
from provenance_tasks.steps.sets.entries import ImageEntry, Shard

if TYPE_CHECKING:
    from provenance_tasks.steps.sets.log import ImageLog

DOTENV_BYTES = 5 * 1024  # GitLab's limit on one dotenv report
DOTENV_VARIABLES = 50  # GitLab.com Free; self-managed instances before 15.x: 20
OLD_DOTENV_VARIABLES = 20


@dataclass
class ImageOutcome:
    """One image's run: its entry, its run and log, and how it ended (None: ok; not started:
    `started` False)."""

    entry: ImageEntry
    run: Run
    log: ImageLog
    error: BaseException | None = None
    started: bool = False
    result: Any = None  # what its pipeline returned (api.py hands it to the caller)


def suffixed(name: str | None, shard: Shard | None) -> str | None:
    """`provenance.env` as shard I writes it: `provenance-I.env`."""
    if not name or shard is None:
        return name
    path = Path(name)
    return str(path.with_name(f"{path.stem}{shard.suffix}{path.suffix}"))


def _siblings(cwd: Path, name: str | None) -> Iterator[Path]:
    """`name`, then the files the shards of a parallel job wrote beside it (name-I)."""
    if not name:
        return
    path = cwd / name
    yield path
    found = path.parent.glob(f"{path.stem}-*{path.suffix}")
    yield from sorted(p for p in found if p.stem[len(path.stem) + 1 :].isdigit())


class ImageOutputs(outputs.Outputs):
    """The outputs of one image of a set: what earlier jobs left of it is the set's (the run read
    it for every image, then removed it: `Run.before`), and what it writes goes in the set's
    report and dotenv, which the run writes for every image at once (`write`)."""

    def earlier(self, run: Run, *, here_only: bool = False) -> outputs.Earlier | None:
        name = run.image_name or ""
        if run.handed.get(name) is not None:
            return run.handed[name]  # this run's own result, handed in
        return earlier_of_image(run, name, here_only=here_only)

    def invalidate(self, run: Run) -> outputs.Earlier | None:
        return run.before

    def forget_verified(self, run: Run) -> None:
        """The run removes the set's verified dotenv before its images start."""

    def write_verified(self, run: Run, values: dict[str, str]) -> None:
        """The run writes the set's verified dotenv, from every image's report."""

    def write(self, run: Run, log: RunLog, values: dict[str, str]) -> None:
        log.outputs = values  # in the set's report; its dotenv holds each image's ref


IMAGE_OUTPUTS = ImageOutputs()


def earlier_of_image(run: Run, name: str, *, here_only: bool = False) -> outputs.Earlier | None:
    """Image `name`'s IMAGE_REF and its run's record: from the set's report (every value), else
    the dotenv (`<NAME>_IMAGE_REF`), else GitLab's variables from an earlier job's dotenv."""
    s, variable = run.settings, ImageEntry(name, {}).variable
    for path in _siblings(run.cwd, s.report):
        try:
            section = json.loads(path.read_text())["images"][name]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # no report here, or not one that knows this image
        values = dict(section.get("outputs") or {}) if isinstance(section, dict) else {}
        if values.get("IMAGE_REF") or _built_in(section):
            # The first report that built the image decides: a failed build has no outputs,
            # and an older report beside it (an earlier run's shard) must not stand in for it.
            return _earlier(values, f"{path.name} (image {name})", values)
        # Only a later task's section (a verify that started the report, an image not run):
        # the digest it worked on is the dotenv's, or GitLab's variables'.
    for path in _siblings(run.cwd, s.dotenv):
        try:
            text = path.read_text()
        except OSError:
            continue
        values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
        if values.get(variable):
            return _earlier(
                values, f"{variable} in {path.name}", _record(values, variable), complete=False
            )
    if not here_only and run.environ.get(variable):
        return _earlier(
            run.environ,
            f"{variable} in the environment",
            _record(run.environ, variable, merged=True),
            complete=False,
        )
    return None


def _built_in(section: Any) -> bool:
    """The section records a build of its image (a failed one too)."""
    tasks = section.get("tasks") if isinstance(section, dict) else None
    return isinstance(tasks, list) and any(
        isinstance(t, dict) and str(t.get("task", "")).startswith("build") for t in tasks
    )


def _record(values: Mapping[str, str], variable: str, *, merged: bool = False) -> dict[str, str]:
    """The image's ref and the run's record. `merged`: GitLab's variables, made of every
    shard's dotenv, where the last one's PROVENANCE_RUN_ID wins: not this image's, so left out."""
    keys = ("PROVENANCE_COMMIT", "PROVENANCE_SOURCE", *(() if merged else ("PROVENANCE_RUN_ID",)))
    return {"IMAGE_REF": values[variable], **{k: values[k] for k in keys if k in values}}


def _earlier(
    values: Mapping[str, str], where: str, record: Mapping[str, str], complete: bool = True
) -> outputs.Earlier | None:
    ref = record.get("IMAGE_REF")
    if not ref:
        return None
    return outputs.Earlier(
        str(ref),
        values.get("PROVENANCE_COMMIT") or None,
        values.get("PROVENANCE_SOURCE") or None,
        where,
        dict(record),
        complete,
    )


def invalidate(run: Run) -> None:
    """Remove the set's dotenv and report: this run replaces them, or fails and leaves none."""
    if run.settings.dry_run:
        return
    for name in (run.settings.dotenv, run.settings.report):
        if name:
            (run.cwd / name).unlink(missing_ok=True)


def dotenv_values(run: Run, log: RunLog, outcomes: Sequence[ImageOutcome]) -> dict[str, str]:
    """The run's record, the report's path and each image's reference, within GitLab's limits:
    a reference that would pass them is left to the report, and said."""
    values = {
        "PROVENANCE_RUN_ID": _run_id(run, outcomes),
        "PROVENANCE_COMMIT": run.ci.labels.get(outputs.REVISION, ""),
        "PROVENANCE_SOURCE": run.ci.labels.get(outputs.SOURCE, ""),
        "PROVENANCE_REPORT": run.settings.report or "",
    }
    left: list[str] = []
    for outcome in outcomes:
        ref = (outcome.log.outputs or {}).get("IMAGE_REF")
        if not ref:
            continue
        trial = {**values, outcome.entry.variable: ref}
        if len(trial) > DOTENV_VARIABLES or len(_dotenv_text(trial)) > DOTENV_BYTES:
            left.append(outcome.entry.variable)
        else:
            values = trial
    if left:
        where = (
            f"only in the report ({run.settings.report})"
            if run.settings.report
            else "left out (no report is configured: set provenance.report)"
        )
        log.warning(
            f"GitLab takes at most {DOTENV_VARIABLES} variables and "
            f"{DOTENV_BYTES // 1024} KB in a dotenv: {', '.join(left)} are {where}"
        )
    elif len(values) > OLD_DOTENV_VARIABLES:
        log.warning(
            f"the dotenv holds {len(values)} variables: GitLab instances older than "
            f"15.x take {OLD_DOTENV_VARIABLES}; every image's ref is in the report too"
        )
    return values


def _dotenv_text(values: Mapping[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())


def _run_id(run: Run, outcomes: Sequence[ImageOutcome]) -> str:
    """The run the images continue when they all continue one (sign after build), else ours."""
    continued = {o.log.run_id for o in outcomes if o.started}
    only = continued.pop() if len(continued) == 1 else None
    return only or run.id


def write(
    run: Run,
    log: RunLog,
    task: str,
    outcomes: Sequence[ImageOutcome],
    shard: Shard | None,
    failure: Mapping[str, Any] | None,
) -> None:
    """The dotenv, $GITHUB_OUTPUT and the report of the set (a dry run writes none).

    A build writes the dotenv, failed or not (it removed the earlier one when it started); a task
    after it only when it passed and has references to hand on: one that failed leaves the
    build's dotenv as it was, and only adds its failure to the report."""
    s = run.settings
    values = dotenv_values(run, log, outcomes)
    log.outputs = values
    if s.dry_run:
        return
    failed = failure is not None or any(o.error is not None for o in outcomes)
    refs = any(o.entry.variable in values for o in outcomes)
    hands_on = task.startswith("build") or (refs and not failed)
    if hands_on:
        if s.dotenv:
            outputs.write_dotenv(run.cwd / s.dotenv, values)
        outputs.write_github_output(run, values)
    if task == "verify" and s.verified_dotenv:
        verified = {
            f"{o.entry.variable.removesuffix('_IMAGE_REF')}_VERIFIED_IMAGE_REF": report.reference
            for o in outcomes
            if o.started and o.error is None and (report := o.log.results.get("verify")) is not None
        }
        outputs.write_dotenv(run.cwd / s.verified_dotenv, verified)  # none verified: no file
    if s.report:
        path = run.cwd / s.report
        existing = report_merge.read_report(path)
        data = _report(run, task, outcomes, shard, failure, values, existing, hands_on)
        if data is not None and log.traffic is not None:
            data["registry_traffic"] = log.traffic.read()  # the run's so far, every image's
        if data is None:
            log.warning(
                f"{s.report} is left as it was: it is no report of a set this version can add "
                f"this {task}'s failure to (the log above has it)"
            )
            return
        text = json.dumps(data, indent=2, default=str)
        outputs.write_whole(path, run.redactor.redact(text) + "\n")


def _report(
    run: Run,
    task: str,
    outcomes: Sequence[ImageOutcome],
    shard: Shard | None,
    failure: Mapping[str, Any] | None,
    values: Mapping[str, str],
    existing: Any,
    hands_on: bool,
) -> dict[str, Any] | None:
    """The set's report once `task` ended: the report of the run it continues with each image's
    part added, else its own. A task that failed adds to the report here, whichever run's,
    replacing nothing (None: the file is no set's report it can add to)."""
    run_id = values["PROVENANCE_RUN_ID"]
    of_a_set = report_merge.is_report(existing) and isinstance(existing.get("images"), dict)
    failed = failure is not None or any(o.error is not None for o in outcomes)
    adding = not task.startswith("build") and failed and existing is not None
    if adding and not of_a_set:
        return None
    same = of_a_set and (existing["run"].get("id") == run_id or adding)
    images: dict[str, Any] = dict(existing["images"]) if same else {}
    for o in outcomes:
        if not o.started:
            images.setdefault(o.entry.name, {"status": "not run", "failure": None})
            continue
        mine = outputs.task_report(o.run, o.log, task, o.error)
        mine.pop("provider", None)
        images[o.entry.name] = _section(images.get(o.entry.name), mine, o)
    tasks = [
        *(existing.get("tasks", []) if same else []),
        {"task": task, "id": run.id, "status": "failed" if failed else "ok", "failure": failure},
    ]
    failed_images = sorted(n for n, section in images.items() if section.get("status") != "ok")
    last = {t["task"]: t for t in tasks if isinstance(t, dict) and "task" in t}
    failed_tasks = [t for t in last.values() if t.get("status") == "failed"]
    ended = failure or (failed_tasks[-1].get("failure") if failed_tasks else None)
    report = {
        "schema": report_merge.REPORT_SCHEMA,
        "run": {
            "id": run_id,
            "provider": run.ci.provider,
            "detected": run.ci.detected,
            "commit": run.ci.labels.get(outputs.REVISION),
            "source": run.ci.labels.get(outputs.SOURCE),
        },
        "provider": run.ci.provider,
        "status": "failed" if failed_images or failed_tasks else "ok",
        "failure": ended or ({"images": failed_images} if failed_images else None),
        "tasks": tasks,
        "shard": {"index": shard.index, "total": shard.total, "source": shard.source}
        if shard
        else None,
        "images": images,
        "outputs": dict(values),
    }
    if same and not hands_on:  # the run's record and outputs stay the build's
        report.update({k: existing[k] for k in ("run", "outputs", "shard") if k in existing})
    return report


def _section(before: Any, mine: dict[str, Any], o: ImageOutcome) -> dict[str, Any]:
    """One image's section once the task ended: its part added to the run's section it
    continues; a failure added to whichever section is there; else its own."""
    if before is None or not report_merge.is_report(before):
        return mine  # none yet, or "not run"
    if o.error is not None:
        return report_merge.added(before, mine)
    continued = report_merge.merged_report(before, mine, o.log.run_id) if o.log.run_id else None
    return continued or mine
