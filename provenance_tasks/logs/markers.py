"""What CI runners read in a job log: GitLab sections, GitHub groups and masks, and nothing forged.

GitLab folds `section_start`/`section_end` lines into collapsible sections; GitHub's runner acts on
`::command::` lines (and the older `##[command]` form). Both are written here and nowhere else, and
every line of untrusted text (tool output, registry error bodies, annotation values) passes through
`neutralise()` first, so none of it can open, close or fake a section, or set an output or a mask.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping

from provenance_tasks.ci._env import GITHUB, GITLAB

# ESC, CR and the other C0 controls (tab and newline stay): without ESC and CR no text can write a
# GitLab marker, and without CR none can overwrite a line shown in the terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\x9b]")
# GitHub's runner matches a command after leading white space, in both spellings.
_WORKFLOW_COMMAND = re.compile(r"^(\s*)(::|##\[)", re.MULTILINE)
# GitLab's parser stops a section name at any other character.
_SECTION_NAME = re.compile(r"[^a-z0-9_.-]")


def neutralise(text: str) -> str:
    """Untrusted text as it may be printed: no control characters, no workflow command."""
    text = _CONTROL.sub("", text)
    return _WORKFLOW_COMMAND.sub(lambda m: m.group(1) + m.group(2)[0] + " " + m.group(2)[1:], text)


def section_name(step: str, taken: set[str]) -> str:
    """A GitLab section name for `step`, of [a-z0-9_.-] only and unique within the run."""
    base = _SECTION_NAME.sub("_", step.lower()) or "step"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    taken.add(name)
    return name


class Markers:
    """No markers: a terminal, or JSON lines that a log pipeline reads."""

    name = ""

    def __init__(self, write: Callable[[str], None], clock: Callable[[], float] = time.time):
        self.write = write
        self.clock = clock

    def mask(self, secrets: Iterable[str]) -> None:
        """Tell the runner which values to mask before anything else is printed."""

    def start(self, name: str, title: str, collapsed: bool) -> None:
        """Open a section; `name` is unique in the run and `title` already neutralised."""

    def end(self, name: str) -> None:
        """Close the section `name`."""


class GitLabMarkers(Markers):
    name = "gitlab"

    def start(self, name: str, title: str, collapsed: bool) -> None:
        options = "[collapsed=true]" if collapsed else ""
        self.write(f"\x1b[0Ksection_start:{int(self.clock())}:{name}{options}\r\x1b[0K{title}")

    def end(self, name: str) -> None:
        self.write(f"\x1b[0Ksection_end:{int(self.clock())}:{name}\r\x1b[0K")


class GitHubMarkers(Markers):
    name = "github"

    def mask(self, secrets: Iterable[str]) -> None:
        # The one place a secret is written: the runner consumes these lines and masks the value
        # in everything printed after them, including output of tools we don't control.
        for secret in sorted(secrets):
            for line in secret.splitlines() or [secret]:
                if line.strip():
                    self.write(f"::add-mask::{line}")

    def start(self, name: str, title: str, collapsed: bool) -> None:
        # Groups always fold on GitHub; an unfolded step simply gets one too.
        self.write(f"::group::{title}")

    def end(self, name: str) -> None:
        self.write("::endgroup::")


def for_environment(
    environ: Mapping[str, str], log_format: str, write: Callable[[str], None]
) -> Markers:
    """The markers of the CI we run in; JSON lines carry none (a pipeline parses every line)."""
    if GITHUB.detected(environ):
        # Masks even in JSON mode: the runner removes those lines, and they protect tool output.
        return GitHubMarkers(write) if log_format != "json" else _MaskOnly(write)
    if log_format == "json":
        return Markers(write)
    if GITLAB.detected(environ):
        return GitLabMarkers(write)
    return Markers(write)


class _MaskOnly(GitHubMarkers):
    name = ""

    def start(self, name: str, title: str, collapsed: bool) -> None:
        pass

    def end(self, name: str) -> None:
        pass
