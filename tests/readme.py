"""The README's generated parts, each between its markers: the table of contents (from the
headings), the settings reference (from `OPTIONS`) and the compatibility table (from
`provenance_tasks.compatibility`, as `tests/interop.py` renders it).

    python -m tests.readme --write     # rewrite them in README.md
    python -m tests.readme             # print them

`tests/unit/test_readme.py` fails while the README holds anything else: a setting or a heading
added without this command.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from provenance_tasks.options import OPTIONS, Option
from provenance_tasks.options.build import BUILD
from provenance_tasks.options.option import EVERY_TASK, RUNS
from provenance_tasks.options.run import RUN
from provenance_tasks.options.signing import SIGNING

README = Path(__file__).resolve().parents[1] / "README.md"

#: The tasks in the order a job runs them, for the reference's flag column.
TASK_ORDER = (
    "login",
    "build",
    "sign",
    "attest",
    "verify",
    "verify-attestation",
    "publish",
    "build-sign-verify",
    "promote",
)

#: Settings no environment variable can hold, and why (`settings._images` refuses a string).
NOT_FROM_THE_ENVIRONMENT = {
    "images": "none: a list of mappings (`INVOKE_PROVENANCE_IMAGES_FILE` names a file of it)"
}

#: The reference's three tables, as `provenance_tasks/options/` holds them.
PARTS = (
    ("Build", "build.py", BUILD),
    ("Signing and verifying", "signing.py", SIGNING),
    ("The run", "run.py", RUN),
)


# --- the settings reference ----------------------------------------------------------------------


def flag(option: Option) -> str | None:
    """The flag a task takes for `option`, as invoke names it from the parameter (`no_tlog` is
    `--no-tlog`, which sets a default-true setting to false); None for a config-only setting."""
    return f"--{option.param.strip('_').replace('_', '-')}" if option.tasks else None


def environment_name(option: Option) -> str | None:
    """The variable that sets `option` (`settings.environment_overrides`), None where none can."""
    if option.key in NOT_FROM_THE_ENVIRONMENT:
        return None
    return f"INVOKE_PROVENANCE_{option.key.upper()}"


def tasks_taking(option: Option) -> str:
    if option.tasks == EVERY_TASK:
        return "every task"
    if option.tasks == RUNS:
        return "every task but login and promote"
    if option.tasks == RUNS | {"promote"}:
        return "every task but login"
    return ", ".join(task for task in TASK_ORDER if task in option.tasks)


def default_text(option: Option) -> str:
    value = option.default
    if value is None or value == []:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def cell(text: str) -> str:
    """Text for a Markdown table cell: `|` escaped, and `<`/`>` outside code spans made entities
    (GitHub and GitLab would take `<NAME>` for an HTML tag and show nothing)."""
    parts = text.replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def reference_row(option: Option) -> str:
    given = flag(option)
    flag_cell = f"`{given}` ({tasks_taking(option)})" if given else "—"
    name = environment_name(option)
    env_cell = f"`{name}`" if name else NOT_FROM_THE_ENVIRONMENT[option.key]
    cells = (f"`{option.key}`", default_text(option), flag_cell, env_cell, cell(option.help))
    return "| " + " | ".join(cells) + " |"


def settings_reference() -> str:
    """Every setting of `OPTIONS`, in its order, in the three tables of its parts."""
    assert tuple(o for _, _, part in PARTS for o in part) == OPTIONS, "PARTS lost a table"
    lines: list[str] = []
    for title, module, part in PARTS:
        if lines:
            lines.append("")
        lines += [
            f"**{title}** (`provenance_tasks/options/{module}`)",
            "",
            "| setting | default | flag (tasks) | environment | what it does |",
            "|---|---|---|---|---|",
            *(reference_row(option) for option in part),
        ]
    return "\n".join(lines)


# --- the table of contents -----------------------------------------------------------------------


def headings(text: str) -> Iterator[tuple[int, str]]:
    """The `##` and `###` headings of `text` (level, title), outside fenced code."""
    fenced = False
    for line in text.splitlines():
        if line.startswith(("```", "~~~")):
            fenced = not fenced
            continue
        found = re.match(r"(#{2,3}) (.+?)\s*#*\s*$", line)
        if found and not fenced:
            yield len(found.group(1)), found.group(2)


def anchor(title: str) -> str:
    """The anchor GitHub and GitLab give a heading: lower case, punctuation (backticks
    included) dropped, spaces made hyphens. They differ on two hyphens in a row, which GitLab
    makes one: `test_readme.py` keeps every heading clear of that."""
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


def contents(text: str) -> str:
    """A nested list of links to the headings of `text`, a repeated anchor numbered as the
    renderers number it (`-1`, `-2`)."""
    seen: dict[str, int] = {}
    lines = []
    for level, title in headings(text):
        slug = anchor(title)
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        link = f"{slug}-{count}" if count else slug
        lines.append(f"{'  ' * (level - 2)}- [{title}](#{link})")
    return "\n".join(lines)


# --- the blocks, written -------------------------------------------------------------------------


def _compatibility(text: str) -> str:
    from tests import interop

    return interop.readme_table()


#: Each block's marker name and how it is made from the README's text, in the order written:
#: the contents last, from the headings as they then stand.
BLOCKS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("compatibility", _compatibility),
    ("settings", lambda text: settings_reference()),
    ("contents", contents),
)


def _between(name: str) -> re.Pattern[str]:
    """`name`'s markers, each on a line of its own, and what they hold (maybe nothing)."""
    begin, end = (re.escape(f"<!-- {name}:{side} -->") for side in ("begin", "end"))
    return re.compile(f"({begin}\n)(.*?)\n?({end})", re.S)


def block(text: str, name: str) -> str | None:
    """What the README holds between `name`'s markers, None without them."""
    found = _between(name).search(text)
    return found.group(2) if found else None


def rewrite(text: str) -> str:
    """`text` with each block made anew between its markers."""
    for name, make in BLOCKS:
        found = _between(name).search(text)
        if found is None:
            raise SystemExit(f"README.md lost its markers <!-- {name}:begin/end -->")
        text = f"{text[: found.end(1)]}{make(text)}\n{text[found.start(3) :]}"
    return text


if __name__ == "__main__":
    import sys

    current = README.read_text()
    if "--write" in sys.argv:
        README.write_text(rewrite(current))
    else:
        for name, make in BLOCKS:
            print(f"<!-- {name} -->\n{make(current)}\n")
