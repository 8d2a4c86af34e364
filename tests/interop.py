"""The interop matrix's rows and its README table, without running anything.

Rows are signing configurations. The full product of the axes is 288 cells, 144 of them
configurations; `ci/test` runs all-pairs over those (every pair of values of any two axes in
some row) plus each CI's defaults in full, and `ci/test matrix` (PROVENANCE_MATRIX=full) runs
them all. The columns are the verifier families of `provenance_tasks.compatibility`, whose
predictions each cell must meet.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, fields

from provenance_tasks.compatibility import (
    NOT_RUN_HERE,
    VERIFIERS,
    Publication,
    reading,
)

MODES = ("keyless-gitlab", "keyless-github", "key-file", "key-env", "certificate", "second-key")
AXES: dict[str, tuple[object, ...]] = {
    "mode": MODES,
    "tlog": (True, False),
    "bundle_format": ("classic", "new", "both"),
    "attest": (True, False),
    "platforms": (1, 2),
    "signer": (2, 3),
}


@dataclass(frozen=True, order=True)
class Row:
    """One signing configuration. `second-key` is keyless GitLab with provenance.second_key."""

    mode: str
    tlog: bool
    bundle_format: str
    attest: bool
    platforms: int
    signer: int  # the cosign major that signs

    @property
    def name(self) -> str:
        return (
            f"{self.mode}-{'tlog' if self.tlog else 'no-tlog'}-{self.bundle_format}-"
            f"{'attest' if self.attest else 'no-attest'}-{self.platforms}p-cosign{self.signer}"
        )

    @property
    def publication(self) -> Publication:
        kind = "keyless" if self.mode.startswith("keyless") or self.mode == "second-key" else None
        return Publication(
            mode=kind or ("certificate" if self.mode == "certificate" else "key"),
            bundle_format=self.bundle_format,
            attest=self.attest,
            second_key=self.mode == "second-key",
            tlog=self.tlog,
        )


def is_configuration(row: Row) -> bool:
    """Cells that are not configurations are tested as bad input instead: keyless without a
    log, and cosign 2 asked for a bundle (test_interop's refusal tests)."""
    keyless = row.mode.startswith("keyless") or row.mode == "second-key"
    if keyless and not row.tlog:
        return False
    return not (row.signer == 2 and row.bundle_format != "classic")


def product() -> list[Row]:
    values = itertools.product(*AXES.values())
    rows = [Row(**dict(zip(AXES, combo, strict=True))) for combo in values]  # type: ignore[arg-type]
    return [row for row in rows if is_configuration(row)]


def _pairs(row: Row) -> set[tuple[tuple[str, object], tuple[str, object]]]:
    items = [(f.name, getattr(row, f.name)) for f in fields(Row)]
    return set(itertools.combinations(items, 2))


def all_pairs() -> list[Row]:
    """A greedy all-pairs cover of the valid rows: deterministic, every coverable pair once."""
    candidates = product()
    wanted = set().union(*(_pairs(row) for row in candidates))
    chosen: list[Row] = []
    while wanted:
        best = max(candidates, key=lambda row: (len(_pairs(row) & wanted), row))
        chosen.append(best)
        wanted -= _pairs(best)
    return chosen


def ci_defaults() -> list[Row]:
    """Each CI's defaults (keyless GitLab, keyless GitHub, a laptop's key), in full: both
    signers, one platform and two."""
    modes = ("keyless-gitlab", "keyless-github", "key-file")
    return [
        Row(mode, True, "classic", True, platforms, signer)
        for mode, platforms, signer in itertools.product(modes, (1, 2), (2, 3))
    ]


def regressions() -> list[Row]:
    """Configurations a defect was found in, kept whatever all-pairs picks: a certificate
    without a log on cosign 3, with its attestation (verify-attestation passed cosign 3 a
    --certificate-chain it refuses)."""
    return [Row("certificate", False, "classic", True, 1, 3)]


def with_the_log(chosen: set[Row]) -> set[Row]:
    """Every mode signed by each cosign with the transparency log on, at least once: a row with
    the defaults otherwise where all-pairs left one out."""
    have = {(row.mode, row.signer) for row in chosen if row.tlog}
    return {
        Row(mode, True, "classic", True, 1, signer)
        for mode in MODES
        for signer in (2, 3)
        if (mode, signer) not in have
    }


def rows(full: bool = False) -> list[Row]:
    """The rows ci/test runs (all-pairs, the defaults, the regressions, every mode with the log
    on by each cosign), or the whole product."""
    if full:
        return product()
    chosen = set(all_pairs()) | set(ci_defaults()) | set(regressions())
    return sorted(chosen | with_the_log(chosen))


def columns(row: Row) -> Iterator[str]:
    """The verifiers that have something to read in this row."""
    for verifier in VERIFIERS:
        if reading(row.publication, verifier) is not None:
            yield verifier


# --- the README's compatibility table ----------------------------------------------------------

_TABLE_ROWS = (
    ("classic (default), key or `env://`", Publication("key", "classic", True)),
    ("classic, keyless", Publication("keyless", "classic", True)),
    ("classic, keyless + `second_key`", Publication("keyless", "classic", True, second_key=True)),
    ("classic, certificate", Publication("certificate", "classic", True)),
    ("new, key", Publication("key", "new", True)),
    ("new, keyless", Publication("keyless", "new", True)),
    ("both, keyless + `second_key`", Publication("keyless", "both", True, second_key=True)),
    ("both, key", Publication("key", "both", True)),
)


def readme_table() -> str:
    """The compatibility table, configuration by verifier, as the README holds it."""
    names = list(VERIFIERS)
    lines = [
        "| what we publish | " + " | ".join(f"`{n}`" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for label, publication in _TABLE_ROWS:
        cells = []
        for name in names:
            answer = reading(publication, name)
            cells.append("n/a" if answer is None else str(answer))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "Verifiers that can't run here (from their projects, not tested):", ""]
    lines += [f"- **{name}**: {reads}" for name, reads in NOT_RUN_HERE.items()]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m tests.interop --write-readme: the README's table anew
    import sys
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    begin, end = "<!-- compatibility:begin -->\n", "\n<!-- compatibility:end -->"
    text = readme.read_text()
    head, rest = text.split(begin, 1)
    tail = rest.split(end, 1)[1]
    if "--write-readme" in sys.argv:
        readme.write_text(head + begin + readme_table() + end + tail)
    else:
        print(readme_table())
