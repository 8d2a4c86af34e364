"""Predicates handed in as files (`--predicate TYPE=FILE`): SBOMs and other attestations.

TYPE is one of cosign's names (`cyclonedx`, `spdxjson`, `slsaprovenance1`) or a predicate-type
URI; `TYPE@os/arch=FILE` attaches it to that platform only. Each file is read and checked before
anything is built: JSON, and shaped as the type it claims (a CycloneDX BOM says so in
`bomFormat`, an SPDX document has `spdxVersion`, SLSA provenance a `buildDefinition`), so a
mislabelled SBOM never gets signed as something it isn't.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from provenance_tasks.errors import InputError

#: cosign's names for predicate types, and the URI each stands for in the statement.
KNOWN = {
    "cyclonedx": "https://cyclonedx.org/bom",
    "spdxjson": "https://spdx.dev/Document",
    "slsaprovenance1": "https://slsa.dev/provenance/v1",
}
_URI = re.compile(r"https?://[^\s]+")
_PLATFORM = re.compile(r"[a-z0-9]+/[a-z0-9_]+(/[a-z0-9.]+)?")


@dataclass(frozen=True)
class Predicate:
    kind: str  # what cosign's --type takes: a known name or a URI
    path: Path
    platform: str | None = None  # None: the image and every platform

    @property
    def uri(self) -> str:
        return KNOWN.get(self.kind, self.kind)


def parse(spec: str, cwd: Path) -> Predicate:
    """`TYPE[@os/arch]=FILE`, the file read and checked now."""
    kind, sep, name = spec.partition("=")
    kind, _, platform = kind.partition("@")
    if not sep or not name or not kind:
        raise InputError(
            f"--predicate {spec!r} is not TYPE=FILE",
            hint="pass e.g. --predicate cyclonedx=sbom.cdx.json",
        )
    if kind not in KNOWN and not _URI.fullmatch(kind):
        raise InputError(
            f"--predicate type {kind!r} is neither {', '.join(KNOWN)} nor a URI",
            hint="name the predicate type, e.g. cyclonedx or https://example.com/v1",
        )
    if platform and not _PLATFORM.fullmatch(platform):
        raise InputError(
            f"--predicate {spec!r}: {platform!r} is not os/arch[/variant]",
            hint="pass e.g. --predicate cyclonedx@linux/arm64=arm64.cdx.json",
        )
    path = (cwd / name).resolve()
    try:
        document = json.loads(path.read_text())
    except OSError as exc:
        raise InputError(
            f"--predicate file {path} can't be read: {exc.strerror}",
            hint="pass the path of the predicate's JSON file",
        ) from None
    except ValueError as exc:
        raise InputError(
            f"--predicate file {path} is not JSON: {exc}", hint="a predicate is one JSON document"
        ) from None
    problem = _not_its_type(kind, document)
    if problem:
        raise InputError(
            f"--predicate file {path} is not {kind}: {problem}",
            hint="check the file, or the TYPE it is given as",
        ) from None
    return Predicate(kind, path, platform or None)


def _not_its_type(kind: str, document: object) -> str | None:
    if not isinstance(document, dict):
        return "it is not a JSON object"
    if kind == "cyclonedx" and document.get("bomFormat") != "CycloneDX":
        return 'it has no "bomFormat": "CycloneDX"'
    if kind == "spdxjson" and not str(document.get("spdxVersion", "")).startswith("SPDX-"):
        return 'it has no "spdxVersion": "SPDX-…"'
    if kind == "slsaprovenance1" and "buildDefinition" not in document:
        return "it has no buildDefinition"
    return None
