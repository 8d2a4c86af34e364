"""Tag rules in docker/metadata-action's spirit: `type=sha`, `type=ref`, `type=semver`, `type=raw`.

One `provenance.tags` list has to serve every pipeline of a project: a branch build wants its
commit's tag, a release wants `1.2.3`, `1.2` and `1`, the default branch wants `latest`. Literal
tags can't say that, so an entry starting with `type=` is a rule, resolved against the facts the
CI provider read about the run (`RefFacts`); anything else stays a literal tag, as before.

A rule that does not apply to this pipeline (semver on a branch) gives no tag and a note saying
why, so that an empty result can be explained. A rule that is wrong (an unknown type or key, a
raw value that is no tag) is refused on every pipeline, not only on the one where it would apply:
a typo in the release rule should fail the branch build, not the release.

Pure: no invoke, no processes, no environment; the providers gather the facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from provenance_tasks.errors import InputError
from provenance_tasks.references import sanitize_tag, validate_tag

__all__ = ["RULE_TYPES", "RefFacts", "expand", "is_rule"]

#: The rule types, and the keys each takes besides `type`.
RULE_TYPES: dict[str, frozenset[str]] = {
    "sha": frozenset({"enable"}),
    "ref": frozenset({"enable"}),
    "semver": frozenset({"enable"}),
    "raw": frozenset({"value", "enable"}),
}
_ENABLE_VALUES = ("default-branch",)
_RULES_HINT = "a rule is type=sha, type=ref, type=semver or type=raw,value=TAG"

# semver.org's grammar with an optional leading "v" (git tags are usually v1.2.3). ASCII digits
# only: Python's \d would take other scripts' digits, which no tag may hold.
_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*"
_SEMVER_RE = re.compile(
    rf"v?(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>(?:{_PRE_ID})(?:\.(?:{_PRE_ID}))*))?"
    r"(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
)


@dataclass(frozen=True, kw_only=True)
class RefFacts:
    """What the pipeline knows about the commit and ref it builds; None where it can't know.

    The `*_source` fields name where each value came from (a variable, a git command), or why it
    is not known, in words a note or an error can quote.
    """

    short_sha: str | None
    sha_source: str
    ref_name: str | None  # the branch or tag name, as git spells it (not yet a valid tag)
    ref_source: str
    is_tag: bool
    default_branch: str | None
    default_branch_source: str
    # A merge/pull request pipeline builds a ref that is not its branch's head: even when its
    # branch is called like the default branch (a fork's main), it is not the default branch.
    is_merge_request: bool = False


def is_rule(entry: str) -> bool:
    """Whether a tags entry is a rule rather than a literal tag ('=' is never in a tag)."""
    return entry.startswith("type=")


def _refuse(what: str, entry: str, problem: str, hint: str) -> InputError:
    return InputError(f"{what} {entry!r}: {problem}", hint=hint)


def _parse(entry: str, what: str) -> tuple[str, dict[str, str]]:
    """The rule's type and its other keys, each checked; refused when anything is unknown."""
    attrs: dict[str, str] = {}
    for part in entry.split(","):
        key, eq, value = (s.strip() for s in part.partition("="))
        if not eq or not key:
            hint = (
                "write key=value pairs joined by ',', e.g. type=raw,value=latest "
                "(a value can't hold ',')"
            )
            raise _refuse(what, entry, f"{part!r} is not KEY=VALUE", hint)
        if key in attrs:
            raise _refuse(what, entry, f"{key} is given twice", f"keep one {key}=")
        attrs[key] = value
    kind = attrs.pop("type")
    if kind not in RULE_TYPES:
        raise _refuse(what, entry, f"unknown rule type {kind!r}", _RULES_HINT)
    allowed = RULE_TYPES[kind]
    unknown = sorted(set(attrs) - allowed)
    if unknown:
        hint = f"type={kind} takes only {' and '.join(sorted(allowed))}; {_RULES_HINT}"
        raise _refuse(what, entry, f"unknown key {unknown[0]!r} in a type={kind} rule", hint)
    if attrs.get("enable", "default-branch") not in _ENABLE_VALUES:
        hint = "enable takes only default-branch; leave it out to tag on every pipeline"
        raise _refuse(what, entry, f"enable={attrs['enable']!r} is not understood", hint)
    if kind == "raw" and not attrs.get("value"):
        raise _refuse(what, entry, "type=raw needs a value", "give the tag: type=raw,value=TAG")
    return kind, attrs


def _off_default_branch(entry: str, facts: RefFacts) -> str | None:
    """Why this pipeline is not on the default branch (a note), or None when it is."""
    name, source = facts.ref_name, facts.ref_source
    if facts.is_tag:
        return f"{entry}: {source} {name} is a tag, not the default branch"
    if facts.is_merge_request:
        return f"{entry}: {source} {name} is a merge or pull request, not the default branch"
    if facts.default_branch is None:
        # Not guessed (a "main" could be wrong and push `latest` from a feature branch).
        return f"{entry}: the default branch is not known ({facts.default_branch_source})"
    if name != facts.default_branch:
        return (
            f"{entry}: {source} {name} is not the default branch {facts.default_branch} "
            f"({facts.default_branch_source})"
        )
    return None


def _semver(entry: str, facts: RefFacts) -> tuple[list[str], str | None]:
    """The version tags of a semver tag pipeline, or none and the note saying why."""
    name, source = facts.ref_name, facts.ref_source
    if name is None:
        return [], f"{entry}: no tag is known ({source} names none)"
    if not facts.is_tag:
        return [], f"{entry}: {source} {name} is a branch, not a tag"
    match = _SEMVER_RE.fullmatch(name)
    if match is None:
        return [], f"{entry}: {source} {name} is not a semantic version (v1.2.3 or 1.2.3)"
    major, minor, patch, pre, build = match.group("major", "minor", "patch", "pre", "build")
    # '+' can't be in a tag: build metadata stays, after a '-' (as sanitize_tag maps a git tag),
    # because dropping it would make two builds of one version push the same tag.
    full = f"{major}.{minor}.{patch}" + (f"-{pre}" if pre else "") + (f"-{build}" if build else "")
    if pre:
        return [full], None  # a pre-release must not move 1.2 and 1 (the latest releases)
    return [full, f"{major}.{minor}", major], None


def _resolve(entry: str, facts: RefFacts, what: str) -> tuple[list[str], str | None]:
    """The tags one rule gives on this pipeline, or none and the note saying why."""
    kind, attrs = _parse(entry, what)
    source = f"{what} {entry!r}"
    if kind == "raw":
        validate_tag(attrs["value"], source)  # before `enable`: a bad value fails everywhere
    if "enable" in attrs:
        off = _off_default_branch(entry, facts)
        if off is not None:
            return [], off
    if kind == "raw":
        return [attrs["value"]], None
    if kind == "sha":
        if facts.short_sha is None:
            return [], f"{entry}: no commit is known ({facts.sha_source} names none)"
        return [validate_tag(facts.short_sha, f"{source} ({facts.sha_source})")], None
    if kind == "ref":
        if facts.ref_name is None:
            return [], f"{entry}: no branch or tag is known ({facts.ref_source} names none)"
        return [sanitize_tag(facts.ref_name, f"{source} ({facts.ref_source})")], None
    tags, note = _semver(entry, facts)
    return [validate_tag(tag, f"{source} ({facts.ref_source})") for tag in tags], note


def expand(
    entries: tuple[str, ...], facts: RefFacts, what: str = "--tag"
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The tags `entries` give on this pipeline, de-duplicated in order, and the notes saying
    why a rule gave none. Literal entries are checked and kept; `what` names the setting in
    errors. Raises InputError for a rule or literal that is wrong whatever the pipeline."""
    tags: list[str] = []
    notes: list[str] = []
    for entry in entries:
        if not is_rule(entry):
            if "=" in entry:  # `value=x,type=raw`: a rule written out of order, not a tag
                hint = f"{_RULES_HINT}, starting with type=; a tag holds no '='"
                raise _refuse(what, entry, "neither a tag nor a rule", hint)
            tags.append(validate_tag(entry, what))
            continue
        found, note = _resolve(entry, facts, what)
        tags.extend(found)
        if note is not None:
            notes.append(note)
    return tuple(dict.fromkeys(tags)), tuple(notes)
