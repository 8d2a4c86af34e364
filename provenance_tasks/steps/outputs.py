"""What later jobs read: a dotenv for GitLab, $GITHUB_OUTPUT lines, and a JSON report of the run."""

from __future__ import annotations

import json
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from provenance_tasks.steps.run import Run
from provenance_tasks.steps.runlog import RunLog


def image_outputs(repository: str, digest: str, tags: tuple[str, ...]) -> dict[str, str]:
    return {
        "IMAGE_URI": f"{repository}:{tags[0]}" if tags else repository,
        "IMAGE_DIGEST": digest,
        "IMAGE_REF": f"{repository}@{digest}",
        "IMAGE_TAGS": ",".join(tags),
    }


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
    """Write the dotenv, $GITHUB_OUTPUT and the report; all of it passes through the redactor."""
    s = run.settings
    if values and s.dotenv:
        write_dotenv(run.cwd / s.dotenv, values)
        write_github_output(run, values)
    if s.report:
        data = report(run, log, {"outputs": values or {}, **(extra or {})})
        text = run.redactor.redact(json.dumps(data, indent=2, default=str))
        (run.cwd / s.report).write_text(text + "\n")


def read_image_ref(run: Run) -> str | None:
    """IMAGE_REF from the environment (GitLab's dotenv artifacts), the dotenv, or the report."""
    if run.environ.get("IMAGE_REF"):
        return run.environ["IMAGE_REF"]
    s = run.settings
    if s.dotenv and (run.cwd / s.dotenv).is_file():
        for line in (run.cwd / s.dotenv).read_text().splitlines():
            if line.startswith("IMAGE_REF="):
                return line.split("=", 1)[1]
    if s.report and (run.cwd / s.report).is_file():
        try:
            data = json.loads((run.cwd / s.report).read_text())
            return str(data["outputs"]["IMAGE_REF"])
        except (ValueError, KeyError, TypeError):
            return None
    return None


def _plain(value: Any) -> Any:
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return value
