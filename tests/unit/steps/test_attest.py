"""Our checks of a verified attestation's statement: type, subject, builder, source, commit."""

from __future__ import annotations

import base64
import json

from provenance_tasks import slsa
from provenance_tasks.steps.attest_verify import _problems

DIGEST = "sha256:" + "a" * 64
EXPECTED = {"builder": "https://ci/b", "source": "https://git/app", "commit": "c0ffee"}


def envelope(**changes: object) -> dict[str, object]:
    statement: dict[str, object] = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": slsa.PREDICATE_TYPE,
        "subject": [{"name": "r", "digest": {"sha256": "a" * 64}}],
        "predicate": {
            "buildDefinition": {
                "externalParameters": {"source": "https://git/app"},
                "resolvedDependencies": [
                    {"uri": "git+https://git/app@x", "digest": {"gitCommit": "c0ffee"}}
                ],
            },
            "runDetails": {"builder": {"id": "https://ci/b"}},
        },
    }
    statement.update(changes)
    return {"payload": base64.b64encode(json.dumps(statement).encode()).decode()}


def test_the_expected_statement_has_no_problem() -> None:
    assert _problems(envelope(), DIGEST, EXPECTED) == []


def test_another_subject_builder_or_commit_is_named() -> None:
    assert _problems(envelope(subject=[{"digest": {"sha256": "b" * 64}}]), DIGEST, EXPECTED) == [
        f"its subject is not {DIGEST}"
    ]
    other = envelope()
    found = _problems(other, DIGEST, {**EXPECTED, "builder": "https://ci/other"})
    assert found == ["builder: expected 'https://ci/other', found 'https://ci/b'"]
    found = _problems(other, DIGEST, {**EXPECTED, "commit": "deadbeef"})
    assert found == ["commit: expected 'deadbeef', found ['c0ffee']"]
    assert _problems({"payload": "not base64 json"}, DIGEST, EXPECTED) == [
        "an attestation whose statement can't be read"
    ]
