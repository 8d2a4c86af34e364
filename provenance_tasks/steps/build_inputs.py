"""What a build is given, checked before it starts, and what the source says about itself.

`resolve(run)` is the plan's part: the context, the Dockerfile, build args, platforms and labels,
read from settings and files only. `source_facts()` is the build's first act (git may be asked,
so it is no part of the plan, which starts no process): when the commit was made, which is what
the image's `created` is made of, never the time of the build; and which tracked files differ from
that commit, since a revision label then names a commit the image wasn't built from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from provenance_tasks.ci.local import git_output
from provenance_tasks.errors import InputError
from provenance_tasks.steps.run import Run

# Build args with these names carry secrets: they belong in --secret, which never reaches a layer.
_SECRET_ARG = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|PRIVATE_KEY|CREDENTIAL|API_KEY", re.I)
# os/arch[/variant], as buildx takes them: linux/amd64, linux/arm64/v8, windows/amd64.
_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9.]+)?")
_LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")
CREATED = "org.opencontainers.image.created"
# The labels that say what the signature's annotations say: the CI's, never the user's.
_SIGNED = frozenset({"org.opencontainers.image.revision", "org.opencontainers.image.source"})
EPOCH_ARG = "SOURCE_DATE_EPOCH"  # BuildKit sets the config's and history's times from it
_SHOWN_CHANGES = 20  # the report lists this many changed files, and counts the rest


@dataclass(frozen=True)
class BuildInputs:
    context: Path
    dockerfile: Path
    build_args: dict[str, str] = field(default_factory=dict)
    platforms: tuple[str, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)  # the CI's, then the user's
    reproducible: bool = False  # layer times rewritten, buildx's provenance off: same digest
    oci_annotations: tuple[str, ...] = ()  # LEVEL:KEY=VALUE, as buildx's --annotation takes


@dataclass
class SourceFacts:
    """When the commit was made (None: nobody could say) and what differs from it."""

    epoch: int | None
    epoch_source: str | None
    changed: tuple[str, ...] | None = ()  # tracked inputs that differ; None: git can't tell
    config_created: str | None = None  # what the pushed config says, when it isn't `created`

    @property
    def created(self) -> str | None:
        if self.epoch is None:
            return None
        return datetime.fromtimestamp(self.epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def as_dict(self) -> dict[str, object]:
        changed = self.changed or ()
        return {
            "created": self.created,
            "created_from": self.epoch_source,
            **({"config_created": self.config_created} if self.config_created else {}),
            "clean": None if self.changed is None else not changed,  # None: unknown
            "changed": list(changed[:_SHOWN_CHANGES]),
            "changed_count": len(changed),
        }


def resolve(run: Run) -> BuildInputs:
    """The build's inputs, every one checked now: nothing is built from a typo."""
    s = run.settings
    if s.reproducible and s.provenance not in (None, "off"):
        raise InputError(
            f"provenance.reproducible and provenance.provenance={s.provenance} were both asked for",
            hint="buildx's provenance records the build's own time and host, so no two builds "
            "match: drop one of them",
        )
    context, dockerfile = context_and_dockerfile(run)
    found = platforms(run)
    return BuildInputs(
        context,
        dockerfile,
        build_args(run),
        found,
        labels(run),
        s.reproducible,
        oci_annotations(run, found),
    )


def context_and_dockerfile(run: Run) -> tuple[Path, Path]:
    context = (run.cwd / run.settings.context).resolve()
    if not context.is_dir():
        raise InputError(f"build context {context} is not a folder", hint="pass --context FOLDER")
    dockerfile = context / "Dockerfile"
    if run.settings.file:
        dockerfile = (run.cwd / run.settings.file).resolve()
    if not dockerfile.is_file():
        raise InputError(f"no Dockerfile at {dockerfile}", hint="pass --file PATH")
    return context, dockerfile


def build_args(run: Run) -> dict[str, str]:
    args: dict[str, str] = {}
    for text in run.settings.build_args:
        name, sep, value = text.partition("=")
        if not sep:
            value = run.environ.get(name, "")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise InputError(
                f"build arg {text!r} is not NAME=value", hint="pass --build-arg NAME=value"
            )
        if _SECRET_ARG.search(name) or any(secret in value for secret in run.redactor.secrets):
            raise InputError(
                f"build arg {name} carries a secret; build args end up in the image's history",
                hint=f"pass it as a build secret: --secret id={name.lower()},env={name}",
            )
        args[name] = value
    return args


def platforms(run: Run) -> tuple[str, ...]:
    """The --platform values, each os/arch[/variant], checked before anything is built rather
    than by buildx halfway."""
    for value in run.settings.platforms:
        if not _PLATFORM.fullmatch(value):
            raise InputError(
                f"--platform {value!r} is not os/arch[/variant]",
                hint="pass e.g. --platform linux/amd64 --platform linux/arm64",
            )
    return tuple(dict.fromkeys(run.settings.platforms))


def labels(run: Run) -> dict[str, str]:
    """The CI's OCI labels, then the user's (`--label`, provenance.labels), which win per key;
    `created` is the commit's time, set by the build (source_facts), never the user's."""
    found = dict(run.ci.labels)
    given: dict[str, str] = {}
    for text in run.settings.labels:
        key, sep, value = text.partition("=")
        if not sep or not _LABEL_KEY.fullmatch(key):
            raise InputError(
                f"--label {text!r} is not KEY=VALUE",
                hint="pass e.g. --label com.example.team=platform",
            )
        if key == CREATED:
            raise InputError(
                f"--label {CREATED}=... is not allowed: it is the commit's time",
                hint=f"set {EPOCH_ARG} to choose it (seconds since 1970)",
            )
        if key in _SIGNED and key in run.ci.labels:
            raise InputError(
                f"--label {key}=... is not allowed: it is the {run.ci.provider} run's own, and "
                "the signature's annotations say the same",
                hint="drop it; the label and the annotation come from the CI",
            )
        if key in given and given[key] != value:
            raise InputError(
                f"--label {key} is given twice with different values", hint=f"pass {key} once"
            )
        if any(secret in value for secret in run.redactor.secrets):
            raise InputError(
                f"--label {key} carries a secret; labels end up in the image's config",
                hint="labels are public: pass secrets as --secret",
            )
        given[key] = value
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise InputError(
                f"--label {key} holds a control character", hint="labels are one line of text"
            )
        found[key] = value
    return found


_LEVELS = ("manifest", "index")


def oci_annotations(run: Run, built_platforms: tuple[str, ...]) -> tuple[str, ...]:
    """`[LEVEL:]KEY=VALUE` as `LEVEL:KEY=VALUE`, LEVEL manifest (buildx's default) or index;
    an index annotation needs an index, which only two or more platforms make."""
    found: list[str] = []
    for text in run.settings.oci_annotations:
        level, sep, rest = text.partition(":")
        if not sep or level not in _LEVELS:  # no level: the manifest, as buildx's default
            level, rest = "manifest", text
        key, sep, value = rest.partition("=")
        if not sep or not _LABEL_KEY.fullmatch(key):
            raise InputError(
                f"--oci-annotation {text!r} is not [LEVEL:]KEY=VALUE",
                hint="pass e.g. --oci-annotation index:com.example.team=platform",
            )
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
            raise InputError(
                f"--oci-annotation {key} holds a control character",
                hint="annotations are one line of text",
            )
        if level == "index" and len(built_platforms) < 2:
            raise InputError(
                f"--oci-annotation index:{key}=... needs an index, and one platform builds a "
                "single manifest",
                hint="build two or more platforms (--platform), or annotate the manifest",
            )
        found.append(f"{level}:{key}={value}")
    return tuple(dict.fromkeys(found))


#: `git status` of a work tree (porcelain, -z, tracked files only); None when git can't tell.
Status = Callable[[Path], str | None]


def work_tree_status(root: Path) -> str | None:
    return git_output(root, "status", "--porcelain", "--untracked-files=no", "-z")


def source_facts(run: Run, inputs: BuildInputs, status: Status = work_tree_status) -> SourceFacts:
    """When the commit was made and which of the build's tracked inputs differ from it; with
    provenance.require_clean, a difference (or a tree git can't answer for) is an error, and
    nothing is built."""
    epoch, where = commit_time(run, inputs)
    changed = tracked_changes(run, inputs, status)
    if run.settings.require_clean and changed is None:
        raise InputError(
            f"provenance.require_clean: git can't say whether {inputs.context} matches the "
            "commit (no repository, the Dockerfile outside it, or git refused it)",
            hint="build from a git checkout (git may need `safe.directory` for this folder), "
            "or drop provenance.require_clean",
        )
    if changed and run.settings.require_clean:
        more = f" and {len(changed) - 5} more" if len(changed) > 5 else ""
        shown = ", ".join(changed[:5]) + more
        raise InputError(
            f"tracked files differ from the commit: {shown}",
            hint="commit or stash them (the image would claim a commit it wasn't built from), "
            "or drop provenance.require_clean to build with a warning",
        )
    if run.settings.reproducible and epoch is None:
        raise InputError(
            "provenance.reproducible needs a time to give the layers: no commit and no "
            f"{EPOCH_ARG}",
            hint=f"build from a git commit, or set {EPOCH_ARG} (seconds since 1970)",
        )
    return SourceFacts(epoch, where, changed)


_EPOCH = re.compile(r"[0-9]{1,11}")  # seconds, up to the year 5138: not milliseconds


def commit_time(run: Run, inputs: BuildInputs) -> tuple[int | None, str | None]:
    """SOURCE_DATE_EPOCH if the user set it (a build arg, or the variable), else the CI's word,
    else `git log`; else None."""
    given = (inputs.build_args.get(EPOCH_ARG) or run.environ.get(EPOCH_ARG, "")).strip()
    if given:
        if not _EPOCH.fullmatch(given):
            raise InputError(
                f"{EPOCH_ARG} is {given!r}, not a number of seconds since 1970",
                hint=f"set {EPOCH_ARG} to e.g. $(git log -1 --format=%ct), or unset it",
            )
        return int(given), EPOCH_ARG
    if run.ci.commit_time is not None:
        return run.ci.commit_time, run.ci.commit_time_source
    out = (git_output(inputs.context, "log", "-1", "--format=%ct", "HEAD") or "").strip()
    if _EPOCH.fullmatch(out):
        return int(out), "git log -1 --format=%ct"
    return None, None


def repository_root(folder: Path) -> Path | None:
    """The work tree `folder` is in, found on disk (no process): None outside any."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def tracked_changes(
    run: Run, inputs: BuildInputs, status: Status = work_tree_status
) -> tuple[str, ...] | None:
    """Tracked files of the build context and the Dockerfile that differ from the commit, our
    own outputs aside; untracked files (an earlier job's artifacts) are not counted. None when
    git can't tell: no repository, a context or Dockerfile outside it, or git refusing it.

    The status is of the whole work tree, read here, so that the images of a set ask git once
    (`status` is then the run's, remembered) and each keeps what is under its own context."""
    root = repository_root(inputs.context)
    if root is None or not inputs.dockerfile.is_relative_to(root):
        return None
    real = root.resolve()
    context_path, dockerfile_path = inputs.context.resolve(), inputs.dockerfile.resolve()
    if not (context_path.is_relative_to(real) and dockerfile_path.is_relative_to(real)):
        return None  # a symlink out of the work tree: git can't answer for it
    out = status(root)
    if out is None:
        return None
    context = context_path.relative_to(real).as_posix()
    dockerfile = dockerfile_path.relative_to(real).as_posix()

    def of_this_build(path: str) -> bool:
        return context == "." or path == dockerfile or path.startswith(f"{context}/")

    # Porcelain paths are relative to the work tree's root; so are those of our outputs here.
    ours = set()
    for name in (run.settings.dotenv, run.settings.report):
        path = (run.cwd / name).resolve() if name else None
        if path is not None and path.is_relative_to(root):
            ours.add(path.relative_to(root).as_posix())
    changed: list[str] = []
    entries = iter(out.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        if entry[0] in "RC":
            next(entries, None)  # a rename's second field is its old path
        if entry[3:] not in ours and of_this_build(entry[3:]):
            changed.append(entry[3:])
    return tuple(changed)
