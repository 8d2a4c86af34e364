"""What a run's report becomes when a task ends: the report here, read as it is, with the task's
part added, or the task's own (steps/outputs.py writes it; steps/sets/outputs.py merges a set's
sections the same way).

A task that passed adds to the report of the run it continues. A task that failed, for any
reason, adds its failure to the report here, whichever run's, and replaces nothing an earlier task
wrote: the build's results and outputs survive it, for the retry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: The report's layout; a reader checks it before trusting a field.
REPORT_SCHEMA = 3

#: What `read_report` gives for a file that is there but isn't JSON.
UNREADABLE: Any = object()


def read_report(path: Path) -> Any:
    """The report at `path` as JSON; None when there is none, UNREADABLE when it isn't JSON."""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return UNREADABLE


def is_report(data: Any) -> bool:
    """A report of this layout: one a task can add to."""
    return (
        isinstance(data, dict)
        and data.get("schema") == REPORT_SCHEMA
        and isinstance(data.get("run"), dict)
        and isinstance(data.get("tasks", []), list)
        and isinstance(data.get("steps", []), list)
    )


def updated_report(
    existing: Any, mine: dict[str, Any], task: str, continues: str | None
) -> dict[str, Any] | None:
    """What the report holds once `task` ended (`mine`: its part; `continues`: the run its plan
    said it takes up, "" none, None: it failed before its plan said). None: leave the file.

    - A build starts its run's report (it removed the earlier one when it started).
    - A task that passed adds to the report of the run it continues, else starts its own.
    - A task that failed, for any reason, adds its failure to the report here, whichever run's:
      it replaces nothing an earlier task wrote, so the build's part and outputs survive it. A
      file here that is no report it can add to is left as it is.
    """
    if task.startswith("build") or existing is None:
        return mine
    if mine["status"] != "ok":
        return added(existing, mine) if is_report(existing) else None
    continued = merged_report(existing, mine, continues) if continues else None
    return continued or mine


def merged_report(existing: Any, mine: dict[str, Any], continues: str) -> dict[str, Any] | None:
    """`existing` (a report, or one image's section of one) with this task's part added, if
    it is of the run this task continues; else None."""
    try:
        run = existing["run"]
        same = existing.get("schema") == REPORT_SCHEMA and (
            run["id"],
            run["commit"],
            run["source"],
        ) == (continues, mine["run"]["commit"], mine["run"]["source"])
    except (KeyError, TypeError, AttributeError):
        return None
    if not same:
        return None  # another run's: this task starts its own report
    return added(existing, mine)


def added(existing: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """`existing` with `mine` added: its task and steps after the others. A task that passed
    sets what it returned; one that failed only adds what no earlier task wrote (its verdict),
    never replacing the build's results or outputs. The run failed while a task's last try
    failed: a later task passing doesn't undo that."""
    passed = mine["status"] == "ok"
    own = {k: v for k, v in mine.items() if k not in ("run", "tasks", "steps")}
    merged = {**existing, **{k: v for k, v in own.items() if passed or k not in existing}}
    # A failed task replaces nothing the build wrote: its traffic too is in its own log only.
    if passed and "registry_traffic" in existing and "registry_traffic" in mine:
        merged["registry_traffic"] = _summed(existing["registry_traffic"], mine["registry_traffic"])
    merged["tasks"] = [*existing.get("tasks", []), *mine["tasks"]]
    merged["steps"] = [*existing.get("steps", []), *mine["steps"]]
    last = {t["task"]: t for t in merged["tasks"] if isinstance(t, dict) and "task" in t}
    failed = [t for t in last.values() if t.get("status") == "failed"]
    merged["status"] = "failed" if failed else "ok"
    merged["failure"] = failed[-1].get("failure") if failed else None
    return merged


def _summed(before: Any, mine: Any) -> Any:
    """The run's traffic over its tasks (each a process of its own, or a call of one run);
    not counted once either part was not."""
    try:
        return {
            **mine,
            "requests": before["requests"] + mine["requests"],
            "uploaded_bytes": before["uploaded_bytes"] + mine["uploaded_bytes"],
            "retried": before.get("retried", 0) + mine.get("retried", 0),
        }
    except (KeyError, TypeError):
        return mine if isinstance(mine, dict) and mine.get("requests") is None else before
