"""The images of one run: `provenance.images` (or `images_file`), checked, narrowed to `--only`
and to this job's shard.

Each entry is a name and the settings of its own it overrides. The name is what the image is
known by everywhere after: its log lines, its row in the summary, its section of the report, and
its variable in the dotenv (`<NAME>_IMAGE_REF`), so two names that make one variable are refused.
A shard is decided by name alone (sorted, dealt in turn), so every job of a `parallel: N` agrees
on who builds what without talking to the others.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from provenance_tasks.errors import InputError

#: The settings an image may give for itself; every other one is the run's.
PER_IMAGE = (
    "context",
    "file",
    "image",
    "tags",
    "platforms",
    "build_args",
    "target",
    "annotations",
    "labels",
    "predicates",
)
_NAME = re.compile(r"^[a-z][a-z0-9_-]*$")


@dataclass(frozen=True)
class ImageEntry:
    """One image of the set: its name and the settings it gives for itself."""

    name: str
    overrides: Mapping[str, Any]

    @property
    def variable(self) -> str:
        """The dotenv variable of its reference: svc-a gives SVC_A_IMAGE_REF."""
        return f"{variable_stem(self.name)}_IMAGE_REF"


@dataclass(frozen=True)
class Shard:
    """Share `index` (1-based, like CI_NODE_INDEX) of `total`, and where that was read."""

    index: int
    total: int
    source: str

    @property
    def suffix(self) -> str:
        return f"-{self.index}"


def variable_stem(name: str) -> str:
    return name.upper().replace("-", "_")


def entries(raw: Sequence[Mapping[str, Any]], where: str) -> tuple[ImageEntry, ...]:
    """The entries of `raw`, each name and key checked."""
    found: list[ImageEntry] = []
    stems: dict[str, str] = {}
    for number, item in enumerate(raw, 1):
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise InputError(
                f"{where}: image {number} has the name {name!r}",
                hint="give each image a name: a lowercase letter first, then lowercase letters, "
                "digits, - or _",
            )
        unknown = sorted(set(item) - {"name", *PER_IMAGE})
        if unknown:
            raise InputError(
                f"{where}: image {name} sets {', '.join(unknown)}, which an image can't set "
                "for itself",
                hint=f"an image sets only {', '.join(PER_IMAGE)}; set the rest for the run",
            )
        stem = variable_stem(name)
        if stem in stems:
            raise InputError(
                f"{where}: images {stems[stem]} and {name} both make {stem}_IMAGE_REF",
                hint="rename one: names must differ in more than - and _",
            )
        stems[stem] = name
        found.append(ImageEntry(name, {k: v for k, v in item.items() if k != "name"}))
    if not found:
        raise InputError(f"{where} lists no image", hint="add an entry with a name, or remove it")
    return tuple(found)


def load(
    images: Sequence[Mapping[str, Any]], images_file: str | None, cwd: Path
) -> tuple[ImageEntry, ...]:
    """The configured set: provenance.images, or the list in provenance.images_file."""
    if images and images_file:
        raise InputError(
            "provenance.images and provenance.images_file are both set",
            hint="keep one list of images",
        )
    if images:
        return entries(images, "provenance.images")
    if not images_file:
        return ()
    import yaml  # only a run that names a file pays for the import

    path = (cwd / images_file).resolve()
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise InputError(
            f"cannot read provenance.images_file {path}: {exc.strerror}",
            hint="check the path (relative to the working folder)",
        ) from None
    except yaml.YAMLError as exc:
        raise InputError(
            f"provenance.images_file {path} is not YAML: {exc}",
            hint="fix the file: a list of images, each with a name",
        ) from None
    if isinstance(data, Mapping) and "images" in data:
        data = data["images"]  # the file may hold `images:` as invoke.yaml does
    if not isinstance(data, list) or not all(isinstance(item, Mapping) for item in data):
        raise InputError(
            f"provenance.images_file {path} holds no list of images",
            hint="write a YAML list of mappings, each with a name",
        )
    return entries(data, str(images_file))


def only(
    found: tuple[ImageEntry, ...], names: Sequence[str], flag: str = "--only"
) -> tuple[ImageEntry, ...]:
    """The entries `names` asks for, in the set's order; a name the set lacks is refused."""
    if not names:
        return found
    known = {e.name for e in found}
    missing = [n for n in names if n not in known]
    if missing:
        raise InputError(
            f"{flag} {', '.join(missing)}: no such image",
            hint=f"the images are: {', '.join(sorted(known))}",
        )
    return tuple(e for e in found if e.name in names)


def shard_of(setting: str | None, environ: Mapping[str, str], gitlab: bool) -> Shard | None:
    """This job's shard: --shard I/N, else GitLab's CI_NODE_INDEX/CI_NODE_TOTAL; None: all."""
    if setting:
        text, source = setting, "--shard"
    elif gitlab and environ.get("CI_NODE_TOTAL", "1") not in ("", "1"):
        # GitLab sets CI_NODE_TOTAL=1, and no CI_NODE_INDEX, in every job without `parallel:`.
        text = f"{environ.get('CI_NODE_INDEX', '')}/{environ['CI_NODE_TOTAL']}"
        source = "CI_NODE_INDEX/CI_NODE_TOTAL"
    else:
        return None
    index, _, total = text.partition("/")
    if not (index.isdigit() and total.isdigit() and 1 <= int(index) <= int(total)):
        raise InputError(
            f"{source} is {text!r}",
            hint="give the share as I/N, 1 <= I <= N (CI_NODE_INDEX counts from 1)",
        )
    if int(total) == 1:
        return None
    return Shard(int(index), int(total), source)


def share(found: tuple[ImageEntry, ...], shard: Shard | None) -> tuple[ImageEntry, ...]:
    """The images of `shard`: the names sorted, then dealt one each to 1..N in turn."""
    if shard is None:
        return found
    order = sorted(e.name for e in found)
    mine = {name for n, name in enumerate(order) if n % shard.total == shard.index - 1}
    return tuple(e for e in found if e.name in mine)
