"""A `docker save` archive made into an OCI layout: what the registry adapter then pushes.

The archives are written here as docker 20.10's `docker save` writes them (manifest.json, the
config as ID.json, each layer as DIR/layer.tar); the classic-engine integration tests push real
ones (tests/integration/test_publish.py and the other `classic` tests).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from provenance_tasks.adapters.docker_archive import (
    CONFIG_TYPE,
    LAYER_TYPE,
    MANIFEST_TYPE,
    layout_from_archive,
    manifest_annotations,
)
from provenance_tasks.adapters.registry.layout import read_layout
from provenance_tasks.errors import CommandFailed, InputError, ToolError


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


LAYERS = [layer({"bin/busybox": b"\x7fELF" + bytes(range(256)) * 64}), layer({"id.txt": b"1\n"})]


def archive(
    folder: Path,
    layers: list[bytes] = LAYERS,
    *,
    diff_ids: list[str] | None = None,
    names: list[str] | None = None,
    links: dict[str, str] | None = None,
    entries_json: object = None,
) -> tuple[Path, str]:
    """A docker 20.10 `docker save` of one image: its path and the image's ID."""
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-11-30T12:00:00Z",
            "rootfs": {"type": "layers", "diff_ids": diff_ids or [sha(x) for x in layers]},
        }
    ).encode()
    image_id = sha(config)
    entries = {f"{image_id[7:]}.json": config}
    names = names or [f"{n:064x}/layer.tar" for n in range(len(layers))]
    for name, data in zip(names, layers, strict=True):
        if name not in (links or {}):
            entries[name] = data
    entries["manifest.json"] = json.dumps(
        entries_json
        if entries_json is not None
        else [{"Config": f"{image_id[7:]}.json", "RepoTags": None, "Layers": names}]
    ).encode()
    path = folder / "image.tar"
    with tarfile.open(path, mode="w") as tar:
        for name, data in entries.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():  # LINK: TARGET, relative to its folder
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return path, image_id


def test_the_layout_holds_the_config_as_saved_and_each_layer_gzipped(tmp_path: Path) -> None:
    path, image_id = archive(tmp_path)
    converted = layout_from_archive(
        path, tmp_path / "layout", image_id=image_id, annotations={"org.example.team": "a"}
    )
    image = read_layout(tmp_path / "layout")  # what push.py reads: it accepts it whole
    assert image.root.digest == converted.digest == sha(image.root.data)
    manifest = json.loads(image.root.data)
    assert manifest["mediaType"] == converted.media_type == MANIFEST_TYPE
    assert manifest["config"] == {
        "mediaType": CONFIG_TYPE,
        "digest": image_id,
        "size": len(converted.config),
    }
    assert manifest["annotations"] == {"org.example.team": "a"}
    blobs = tmp_path / "layout" / "blobs" / "sha256"
    for descriptor, raw in zip(manifest["layers"], LAYERS, strict=True):
        assert descriptor["mediaType"] == LAYER_TYPE
        sent = (blobs / descriptor["digest"][7:]).read_bytes()
        assert sha(sent) == descriptor["digest"] and len(sent) == descriptor["size"]
        assert gzip.decompress(sent) == raw
    assert [b.digest for b in image.root.blobs] == [image_id] + [
        d["digest"] for d in manifest["layers"]
    ]
    assert not list(blobs.glob(".*"))  # no part file left behind


def test_the_same_image_makes_the_same_digest_again(tmp_path: Path) -> None:
    """No time and no name in the gzip header: a warm push finds every blob at the registry."""
    path, image_id = archive(tmp_path)
    one = layout_from_archive(path, tmp_path / "one", image_id=image_id)
    two = layout_from_archive(path, tmp_path / "two", image_id=image_id)
    assert one.digest == two.digest
    assert "annotations" not in json.loads(read_layout(tmp_path / "one").root.data)


def test_a_layer_the_image_names_twice_is_gzipped_once(tmp_path: Path) -> None:
    """Two writers of one part file would garble the blob: the layer is read once."""
    twice = [LAYERS[0], LAYERS[0]]
    path, image_id = archive(tmp_path, twice, names=[f"{0:064x}/layer.tar"] * 2)
    layout_from_archive(path, tmp_path / "layout", image_id=image_id)
    manifest = json.loads(read_layout(tmp_path / "layout").root.data)
    assert manifest["layers"][0] == manifest["layers"][1]


def test_an_empty_layer_is_still_a_gzip_stream(tmp_path: Path) -> None:
    path, image_id = archive(tmp_path, [b""])
    layout_from_archive(path, tmp_path / "layout", image_id=image_id)
    manifest = json.loads(read_layout(tmp_path / "layout").root.data)
    sent = tmp_path / "layout" / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]
    assert gzip.decompress(sent.read_bytes()) == b""


def test_a_config_that_is_not_the_image_built_is_refused(tmp_path: Path) -> None:
    path, _ = archive(tmp_path)
    with pytest.raises(ToolError, match="does not hash to the image ID"):
        layout_from_archive(path, tmp_path / "layout", image_id="sha256:" + "0" * 64)


def test_a_layer_that_is_not_its_diff_id_is_refused(tmp_path: Path) -> None:
    path, image_id = archive(tmp_path, diff_ids=[sha(b"other"), sha(LAYERS[1])])
    with pytest.raises(ToolError, match="does not hash to its diff ID"):
        layout_from_archive(path, tmp_path / "layout", image_id=image_id)
    assert not (tmp_path / "layout" / "index.json").exists()  # nothing to push


def test_a_config_naming_other_layers_is_refused(tmp_path: Path) -> None:
    path, image_id = archive(tmp_path, diff_ids=[sha(LAYERS[0])])
    with pytest.raises(ToolError, match="holds 2 layers, its config names 1"):
        layout_from_archive(path, tmp_path / "layout", image_id=image_id)


def test_an_archive_without_a_manifest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "image.tar"
    with tarfile.open(path, mode="w"):
        pass
    with pytest.raises(ToolError, match=r"lacks manifest\.json"):
        layout_from_archive(path, tmp_path / "layout", image_id="sha256:" + "0" * 64)


def test_a_layer_docker_20_10_saved_as_a_link_to_the_first_is_read_from_it(
    tmp_path: Path,
) -> None:
    """docker 20.10 saves a layer the image holds twice once, the second a symlink to it."""
    first, second = f"{1:064x}/layer.tar", f"{2:064x}/layer.tar"
    path, image_id = archive(
        tmp_path,
        [LAYERS[0], LAYERS[0]],
        names=[first, second],
        links={second: f"../{first}"},
    )
    layout_from_archive(path, tmp_path / "layout", image_id=image_id)
    manifest = json.loads(read_layout(tmp_path / "layout").root.data)
    assert manifest["layers"][0] == manifest["layers"][1]


def test_docker_25s_archive_of_the_classic_store_converts_too(tmp_path: Path) -> None:
    """docker 25+ names the config and layers blobs/sha256/HEX (its layers still uncompressed)."""
    names = [f"blobs/sha256/{sha(x)[7:]}" for x in LAYERS]
    path, image_id = archive(tmp_path, names=names)
    layout_from_archive(path, tmp_path / "layout", image_id=image_id)
    assert len(json.loads(read_layout(tmp_path / "layout").root.data)["layers"]) == 2


def test_a_layer_saved_compressed_is_refused_as_such(tmp_path: Path) -> None:
    zipped = gzip.compress(LAYERS[1])
    path, image_id = archive(tmp_path, [zipped], diff_ids=[sha(LAYERS[1])])
    with pytest.raises(ToolError, match="was saved compressed"):
        layout_from_archive(path, tmp_path / "layout", image_id=image_id)


@pytest.mark.parametrize(
    "entries", [5, [5], [], [{"Config": "x.json", "Layers": [5]}], [{"Layers": []}]]
)
def test_a_manifest_json_of_another_shape_is_a_tool_error(tmp_path: Path, entries: object) -> None:
    path, image_id = archive(tmp_path, entries_json=entries)
    with pytest.raises(ToolError, match=r"images, where one was saved|names no config"):
        layout_from_archive(path, tmp_path / "layout", image_id=image_id)


def test_a_cancelled_run_stops_the_gzip_as_a_cancelled_tool(tmp_path: Path) -> None:
    import threading

    path, image_id = archive(tmp_path)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CommandFailed) as failed:
        layout_from_archive(path, tmp_path / "layout", image_id=image_id, cancel=cancel)
    assert failed.value.returncode == -9


def test_only_manifest_annotations_fit_a_single_manifest() -> None:
    assert manifest_annotations(["manifest:a=1", "manifest:b=x=y"]) == {"a": "1", "b": "x=y"}
    with pytest.raises(InputError, match="single manifest"):
        manifest_annotations(["index:a=1"])
