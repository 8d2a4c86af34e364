"""Which verifier reads what we publish: the predictions the plan, the report and the interop
matrix share, and the README's table rendered from them."""

from __future__ import annotations

import re
from pathlib import Path

from provenance_tasks.compatibility import Publication, readers, reading, refused_by_own_cosign
from tests import interop

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_readmes_compatibility_table_is_the_one_the_code_predicts() -> None:
    text = README.read_text()
    found = re.search(
        r"<!-- compatibility:begin -->\n(.*?)\n<!-- compatibility:end -->", text, re.S
    )
    assert found, "README.md lost its compatibility markers"
    assert found.group(1) == interop.readme_table(), "run: python -m tests.interop --write-readme"


def test_the_default_format_is_read_by_every_verifier_that_reads_image_signatures() -> None:
    """classic, with a key, or keyless with the key co-signature podman/CRI-O need (keyless
    alone they can't read: the next test's refusal)."""
    for mode in ("key", "keyless"):
        default = Publication(mode, "classic", attest=True, second_key=mode == "keyless")
        assert all(answer.startswith("yes") for answer in readers(default).values()), mode
    keyless = reading(Publication("keyless", "classic", attest=True), "containers-image")
    assert keyless is not None and not keyless.reads and "second_key" in keyless.why


def test_a_refusal_always_says_why_and_cosign2_is_refused_new_bundles_up_front() -> None:
    bundle = Publication("key", "new", attest=True)
    answer = reading(bundle, "cosign2")
    assert answer is not None and not answer.reads and "referrers" in answer.why
    assert refused_by_own_cosign(bundle, 2) is not None
    assert refused_by_own_cosign(bundle, 3) is None
    assert refused_by_own_cosign(Publication("key", "both", attest=True), 2) is None


def test_nothing_to_read_is_not_a_cell() -> None:
    plain = Publication("key", "classic", attest=False)
    assert reading(plain, "cosign3-attestation") is None and reading(plain, "oras") is None
    assert "oras" not in readers(plain)


def test_the_matrix_covers_every_pair_of_axis_values_and_each_cis_defaults() -> None:
    rows = interop.rows()
    chosen = set(rows)
    for row in interop.product():
        for pair in interop._pairs(row):
            assert any(pair in interop._pairs(r) for r in chosen), pair
    assert set(interop.ci_defaults()) <= chosen
    assert len(interop.product()) == 144 and len(rows) == 31  # the README says so
    signed_with_the_log = {(row.mode, row.signer) for row in rows if row.tlog}
    assert signed_with_the_log == {(mode, signer) for mode in interop.MODES for signer in (2, 3)}
    assert all(interop.is_configuration(row) for row in interop.product())
