"""cosign 3's bundles as a client finds them: the referrers API, or the fallback tag's index,
repaired to name each bundle's type and annotations.

Against an in-process registry (tests/unit/referrers_registry.py). No registry with the OCI
referrers API runs on this machine: the API path is tested against that fake only.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance_tasks.adapters.registry import referrers
from provenance_tasks.errors import CommandFailed, ToolError
from tests.unit.referrers_registry import (
    BUNDLE,
    EMPTY,
    INDEX,
    NAME,
    Registry,
    State,
    bundle,
    ggcr_index,
    image,
    serving,
)

SIGNED = {
    "dev.sigstore.bundle.content": "message-signature",
    "dev.sigstore.bundle.predicateType": "https://sigstore.dev/cosign/sign/v1",
}
ATTESTED = {
    "dev.sigstore.bundle.content": "dsse-envelope",
    "dev.sigstore.bundle.predicateType": "https://slsa.dev/provenance/v1",
}


@pytest.fixture
def server() -> Iterator[str]:
    with serving() as address:
        yield address


def state() -> State:
    return Registry.state


def repo(server: str) -> str:
    return f"{server}/{NAME}"


def test_an_index_cosign_wrote_empty_typed_gets_each_bundles_type_and_annotations(
    server: str, tmp_path: Path
) -> None:
    st = state()
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    attested = bundle(st, subject, annotations=ATTESTED)
    tag = ggcr_index(st, subject, [signed, attested])

    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)

    assert st.writes() == [f"/v2/{NAME}/manifests/{tag}"]  # one PUT, under the same tag
    index = st.json(tag)
    assert [(d["artifactType"], d["annotations"]) for d in index["manifests"]] == [
        (BUNDLE, SIGNED),
        (BUNDLE, ATTESTED),
    ]
    # The rest of each descriptor is as cosign wrote it.
    assert [(d["mediaType"], d["digest"], d["size"]) for d in index["manifests"]] == [
        (d["mediaType"], d["digest"], d["size"]) for d in (signed, attested)
    ]
    assert repair.rewritten and repair.found and repair.tag == tag
    assert repair.typed == ((signed["digest"], EMPTY), (attested["digest"], EMPTY))
    assert [(r.artifact_type, r.annotations) for r in repair.referrers] == [
        (BUNDLE, SIGNED),
        (BUNDLE, ATTESTED),
    ]
    assert repair.describe() == f"fallback index {tag}: 2 referrers, 2 typed (was empty)"
    # What a client that filters by type sees now
    seen = referrers.referrers_of(repo(server), subject["digest"], config_dir=tmp_path)
    assert [r.digest for r in seen if r.artifact_type == BUNDLE] == [
        signed["digest"],
        attested["digest"],
    ]


def test_a_manifest_without_an_artifact_type_is_typed_by_its_config_media_type(
    server: str, tmp_path: Path
) -> None:
    st = state()
    subject = image(st)
    old_style = bundle(st, subject, artifact_type=None, config_media_type="application/x-sbom")
    tag = "sha256-" + subject["digest"].removeprefix("sha256:")
    # A line with no artifactType at all
    st.put({"schemaVersion": 2, "mediaType": INDEX, "manifests": [old_style]}, tag)

    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)

    assert st.json(tag)["manifests"][0]["artifactType"] == "application/x-sbom"
    assert "annotations" not in st.json(tag)["manifests"][0]  # the manifest has none to copy
    assert repair.typed == ((old_style["digest"], None),)
    assert repair.describe().endswith("1 referrer, 1 typed (was untyped)")


def test_an_index_already_typed_is_left_alone(server: str, tmp_path: Path) -> None:
    st = state()
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    tag = "sha256-" + subject["digest"].removeprefix("sha256:")
    typed = {**signed, "artifactType": BUNDLE, "annotations": SIGNED}
    st.put({"schemaVersion": 2, "mediaType": INDEX, "manifests": [typed]}, tag)
    before = st.manifests[tag]

    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)

    assert st.writes() == []  # no PUT
    assert st.manifests[tag] == before
    assert not repair.rewritten and repair.typed == ()
    assert repair.describe().endswith("1 referrer, already typed, nothing written")
    # Only the tag was read: a typed line needs no look at its manifest.
    assert [m for m, _ in st.seen] == ["GET"]


def test_no_fallback_tag_is_nothing_to_repair(server: str, tmp_path: Path) -> None:
    subject = image(state())
    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)
    assert not repair.found and not repair.rewritten and state().writes() == []
    assert repair.describe().endswith("absent, nothing to repair")


def test_a_referrer_the_registry_lost_is_left_as_listed(server: str, tmp_path: Path) -> None:
    st = state()
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    gone = {"mediaType": signed["mediaType"], "digest": "sha256:" + "d" * 64, "size": 9}
    tag = ggcr_index(st, subject, [gone, signed])

    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)

    assert [d["artifactType"] for d in st.json(tag)["manifests"]] == [EMPTY, BUNDLE]
    assert repair.left == (gone["digest"],) and repair.rewritten
    assert "1 left as listed" in repair.describe()


def test_the_referrers_api_answering_an_index_is_the_api(server: str, tmp_path: Path) -> None:
    st = state()
    st.api = True
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    assert referrers.has_referrers_api(repo(server), subject["digest"], config_dir=tmp_path)
    assert st.seen == [("GET", f"/v2/{NAME}/referrers/{subject['digest']}")]
    listed = referrers.referrers_of(repo(server), subject["digest"], config_dir=tmp_path)
    assert [(r.digest, r.artifact_type, r.annotations) for r in listed] == [
        (signed["digest"], BUNDLE, SIGNED)
    ]


def test_a_404_from_the_referrers_endpoint_is_no_api(server: str, tmp_path: Path) -> None:
    subject = image(state())
    assert not referrers.has_referrers_api(repo(server), subject["digest"], config_dir=tmp_path)


@pytest.mark.parametrize(
    ("status", "kind"), [(503, "transient"), (429, "rate-limited"), (403, "permanent")]
)
def test_any_other_answer_of_the_referrers_endpoint_is_a_registry_failure(
    server: str, tmp_path: Path, status: int, kind: str
) -> None:
    state().fail["GET referrers"] = [status]
    with pytest.raises(CommandFailed) as caught:
        referrers.has_referrers_api(repo(server), "sha256:" + "a" * 64, config_dir=tmp_path)
    assert caught.value.cause.kind == kind and caught.value.exit_code == 4


def test_the_api_s_referrers_are_listed_in_a_new_fallback_index(
    server: str, tmp_path: Path
) -> None:
    """provenance.referrers tag on a registry with the API: the tag lists what the API does."""
    st = state()
    st.api = True
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    listed = referrers.referrers_of(repo(server), subject["digest"], config_dir=tmp_path)

    repair = referrers.repair_fallback_index(
        repo(server), subject["digest"], config_dir=tmp_path, listed=listed
    )

    tag = "sha256-" + subject["digest"].removeprefix("sha256:")
    index = st.json(tag)
    assert index["mediaType"] == INDEX and st.manifests[tag][1] == INDEX
    assert index["manifests"] == [{**signed, "artifactType": BUNDLE, "annotations": SIGNED}]
    assert repair.added == (signed["digest"],) and repair.rewritten


def test_a_tag_another_writer_changes_meanwhile_is_read_and_typed_again(
    server: str, tmp_path: Path
) -> None:
    st = state()
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    attested = bundle(st, subject, annotations=ATTESTED)
    tag = ggcr_index(st, subject, [signed])

    def cosign_of_another_job(st: State, ref: str) -> None:
        st.after_put = None  # once: it appends its own, typed "empty", over our put
        ours = st.json(ref)["manifests"]
        st.put(
            {
                "schemaVersion": 2,
                "mediaType": INDEX,
                "manifests": [*ours, {**attested, "artifactType": EMPTY}],
            },
            ref,
        )

    st.after_put = cosign_of_another_job
    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)

    assert len(st.writes()) == 2
    assert [d["artifactType"] for d in st.json(tag)["manifests"]] == [BUNDLE, BUNDLE]
    assert {d for d, _ in repair.typed} == {signed["digest"], attested["digest"]}


def test_a_tag_that_never_holds_still_fails_as_a_registry_failure(
    server: str, tmp_path: Path
) -> None:
    st = state()
    subject = image(st)
    tag = ggcr_index(st, subject, [bundle(st, subject, annotations=SIGNED)])

    def always_back(st: State, ref: str) -> None:
        ggcr_index(st, subject, [bundle(st, subject, annotations=SIGNED)])

    st.after_put = always_back
    with pytest.raises(ToolError) as caught:
        referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)
    assert caught.value.exit_code == 4 and "kept changing" in caught.value.message
    assert tag in caught.value.message


def test_the_login_in_the_docker_config_is_used(server: str, tmp_path: Path) -> None:
    st = state()
    st.login = True
    subject = image(st)
    tag = ggcr_index(st, subject, [bundle(st, subject, annotations=SIGNED)])
    auth = base64.b64encode(b"user:s3cret").decode()
    (tmp_path / "config.json").write_text(json.dumps({"auths": {server: {"auth": auth}}}))

    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)

    assert repair.rewritten and st.json(tag)["manifests"][0]["artifactType"] == BUNDLE


def test_a_tag_that_is_no_index_is_refused(server: str, tmp_path: Path) -> None:
    st = state()
    subject = image(st)
    tag = "sha256-" + subject["digest"].removeprefix("sha256:")
    st.put(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {},
            "layers": [],
        },
        tag,
    )
    with pytest.raises(ToolError, match="not an OCI image index"):
        referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)
    assert st.writes() == []


def test_the_fallback_tag_follows_the_spec_s_schema() -> None:
    assert referrers.fallback_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
    assert referrers.fallback_tag("sha512:" + "b" * 128) == "sha512-" + "b" * 64


def test_a_repair_reads_as_plain_data_for_the_report(server: str, tmp_path: Path) -> None:
    st = state()
    subject = image(st)
    signed = bundle(st, subject, annotations=SIGNED)
    ggcr_index(st, subject, [signed])
    repair = referrers.repair_fallback_index(repo(server), subject["digest"], config_dir=tmp_path)
    found: dict[str, Any] = json.loads(json.dumps(repair.as_dict()))
    assert found["rewritten"] is True
    assert found["referrers"] == [
        {"artifactType": BUNDLE, "digest": signed["digest"], "annotations": SIGNED}
    ]
    assert found["typed"] == [{"digest": signed["digest"], "was": EMPTY}]
