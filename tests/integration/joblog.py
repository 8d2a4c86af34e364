"""Read a job log the way GitLab's log viewer does: sections, their names, times and contents."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

START = re.compile(
    r"^\x1b\[0Ksection_start:(?P<ts>\d+):(?P<name>[^\[\r]*)(?P<options>\[[^\]]*\])?\r\x1b\[0K(?P<title>.*)$"
)
END = re.compile(r"^\x1b\[0Ksection_end:(?P<ts>\d+):(?P<name>[^\r]*)\r\x1b\[0K$")
VALID_NAME = re.compile(r"^[a-z0-9_.-]+$")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@dataclass
class Section:
    name: str
    title: str
    collapsed: bool
    started: int
    ended: int | None = None
    lines: list[str] = field(default_factory=list)


@dataclass
class JobLog:
    sections: list[Section]
    outside: list[str]  # lines outside every section, colours removed

    def section(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)


def plain(text: str) -> str:
    """The log without colours, as a person reads it."""
    return ANSI.sub("", text)


def parse(text: str) -> JobLog:
    """Parse and check: every start has its end, in order, valid unique names, time never back."""
    sections: list[Section] = []
    outside: list[str] = []
    current: Section | None = None
    last_ts = 0
    for number, line in enumerate(text.split("\n"), 1):
        start, end = START.match(line), END.match(line)
        if start:
            assert current is None, f"line {number}: section inside {current.name}: {line!r}"
            name, ts = start["name"], int(start["ts"])
            assert VALID_NAME.match(name), f"line {number}: invalid section name {name!r}"
            assert name not in {s.name for s in sections}, f"line {number}: {name} twice"
            assert ts >= last_ts, f"line {number}: time went back"
            current = Section(name, start["title"], start["options"] == "[collapsed=true]", ts)
            last_ts = ts
        elif end:
            assert current is not None, f"line {number}: section_end with none open: {line!r}"
            assert end["name"] == current.name, (
                f"line {number}: ends {end['name']}, not {current.name}"
            )
            ts = int(end["ts"])
            assert ts >= last_ts, f"line {number}: time went back"
            current.ended, last_ts = ts, ts
            sections.append(current)
            current = None
        else:
            assert (
                "section_start:" not in line and "section_end:" not in line
            ) or "\x1b" not in line, f"line {number}: a marker the parser would misread: {line!r}"
            (current.lines if current else outside).append(ANSI.sub("", line))
    assert current is None, f"section {current.name} never ends"
    return JobLog(sections, outside)
