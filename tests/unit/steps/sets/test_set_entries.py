"""The set of images of a run: entries checked by name and key, read from provenance.images or
a YAML file, narrowed to --only, and dealt into shards by name alone."""

from __future__ import annotations

from pathlib import Path

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.steps.sets.entries import (
    PER_IMAGE,
    ImageEntry,
    Shard,
    entries,
    load,
    only,
    shard_of,
    share,
)


def names(found: tuple[ImageEntry, ...]) -> list[str]:
    return [e.name for e in found]


# --- entries ------------------------------------------------------------------------------------


def test_entries_keep_each_name_and_its_own_settings_in_order() -> None:
    found = entries(
        [{"name": "web", "context": "web", "tags": ["v1"]}, {"name": "api_2"}], "provenance.images"
    )
    assert names(found) == ["web", "api_2"]
    assert dict(found[0].overrides) == {"context": "web", "tags": ["v1"]}  # no "name" in it
    assert dict(found[1].overrides) == {}


@pytest.mark.parametrize("name", ["Web", "1web", "-web", "we b", "web/x", "", None, 3])
def test_a_name_that_is_not_lowercase_letters_digits_dash_or_underscore_is_refused(
    name: object,
) -> None:
    with pytest.raises(InputError) as caught:
        entries([{"name": "ok"}, {"name": name}], "provenance.images")
    assert "provenance.images: image 2 has the name" in caught.value.message
    assert caught.value.hint and "lowercase letter first" in caught.value.hint


def test_an_entry_without_a_name_is_refused() -> None:
    with pytest.raises(InputError, match="image 1 has the name None"):
        entries([{"context": "web"}], "images.yaml")


def test_a_setting_an_image_cannot_give_for_itself_is_refused_by_name() -> None:
    with pytest.raises(InputError) as caught:
        entries([{"name": "web", "registry": "r.test", "builder": "b"}], "provenance.images")
    assert "image web sets builder, registry" in caught.value.message
    assert caught.value.hint and all(key in caught.value.hint for key in PER_IMAGE)


def test_every_per_image_setting_is_accepted() -> None:
    (entry,) = entries([{"name": "web", **{key: "x" for key in PER_IMAGE}}], "provenance.images")
    assert set(entry.overrides) == set(PER_IMAGE)


@pytest.mark.parametrize(("first", "second"), [("svc-a", "svc_a"), ("a-b_c", "a_b-c")])
def test_two_names_that_make_one_dotenv_variable_are_refused(first: str, second: str) -> None:
    with pytest.raises(InputError) as caught:
        entries([{"name": first}, {"name": second}], "provenance.images")
    assert f"images {first} and {second} both make" in caught.value.message
    assert ImageEntry(first, {}).variable in caught.value.message


def test_an_empty_list_is_refused() -> None:
    with pytest.raises(InputError, match="lists no image"):
        entries([], "images.yaml")


@pytest.mark.parametrize(
    ("name", "variable"),
    [("svc-a", "SVC_A_IMAGE_REF"), ("web", "WEB_IMAGE_REF"), ("a_b-2", "A_B_2_IMAGE_REF")],
)
def test_the_dotenv_variable_of_an_image(name: str, variable: str) -> None:
    assert ImageEntry(name, {}).variable == variable


# --- load ---------------------------------------------------------------------------------------


def test_load_takes_provenance_images(tmp_path: Path) -> None:
    found = load([{"name": "web"}, {"name": "api"}], None, tmp_path)
    assert names(found) == ["web", "api"]


def test_load_without_a_set_is_no_image(tmp_path: Path) -> None:
    assert load([], None, tmp_path) == ()
    assert load((), "", tmp_path) == ()


def test_load_refuses_both_a_list_and_a_file(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text("- name: web\n")
    with pytest.raises(InputError, match="both set"):
        load([{"name": "api"}], "images.yaml", tmp_path)


def test_load_reads_a_yaml_list_relative_to_the_working_folder(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    (tmp_path / "ci" / "images.yaml").write_text(
        "- name: web\n  context: web\n  tags: [v1, v2]\n- name: api\n"
    )
    found = load([], "ci/images.yaml", tmp_path)
    assert names(found) == ["web", "api"]
    assert dict(found[0].overrides) == {"context": "web", "tags": ["v1", "v2"]}


def test_load_reads_a_file_holding_images_as_invoke_yaml_does(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text("images:\n  - name: web\n  - name: api\n")
    assert names(load([], "images.yaml", tmp_path)) == ["web", "api"]


def test_load_checks_the_files_entries_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text("- name: web\n  registry: r.test\n")
    with pytest.raises(InputError, match=r"^images\.yaml: image web sets registry"):
        load([], "images.yaml", tmp_path)


def test_load_says_a_missing_file_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        load([], "nowhere.yaml", tmp_path)
    assert "cannot read provenance.images_file" in caught.value.message
    assert str(tmp_path / "nowhere.yaml") in caught.value.message


def test_load_says_a_file_that_is_not_yaml(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text("- name: web\n  tags: [unclosed\n")
    with pytest.raises(InputError, match="is not YAML"):
        load([], "images.yaml", tmp_path)


@pytest.mark.parametrize("text", ["web\n", "name: web\n", "- web\n- api\n", "images: web\n", ""])
def test_load_refuses_a_file_that_holds_no_list_of_mappings(tmp_path: Path, text: str) -> None:
    (tmp_path / "images.yaml").write_text(text)
    with pytest.raises(InputError, match="holds no list of images"):
        load([], "images.yaml", tmp_path)


# --- only ---------------------------------------------------------------------------------------

SET = entries([{"name": n} for n in ("web", "api", "worker", "docs")], "provenance.images")


def test_only_without_names_is_the_whole_set() -> None:
    assert only(SET, []) == SET


def test_only_keeps_the_sets_order_not_the_flags() -> None:
    assert names(only(SET, ["docs", "web"])) == ["web", "docs"]


def test_only_refuses_a_name_the_set_lacks_and_lists_the_set() -> None:
    with pytest.raises(InputError) as caught:
        only(SET, ["web", "nope", "gone"], "--image-name")
    assert caught.value.message == "--image-name nope, gone: no such image"
    assert caught.value.hint == "the images are: api, docs, web, worker"


# --- shards -------------------------------------------------------------------------------------


def test_shard_from_the_flag() -> None:
    shard = shard_of("2/3", {}, gitlab=False)
    assert shard == Shard(2, 3, "--shard")
    assert shard.suffix == "-2"


def test_shard_from_gitlabs_parallel_variables() -> None:
    environ = {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}
    assert shard_of(None, environ, gitlab=True) == Shard(1, 4, "CI_NODE_INDEX/CI_NODE_TOTAL")


def test_gitlabs_variables_outside_gitlab_make_no_shard() -> None:
    assert shard_of(None, {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}, gitlab=False) is None


def test_a_gitlab_job_without_parallel_works_on_every_image() -> None:
    assert shard_of(None, {"CI_NODE_TOTAL": "1"}, gitlab=True) is None


def test_the_flag_beats_gitlabs_variables() -> None:
    environ = {"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "4"}
    assert shard_of("3/5", environ, gitlab=True) == Shard(3, 5, "--shard")


def test_one_share_of_one_and_no_setting_are_all_images() -> None:
    assert shard_of("1/1", {}, gitlab=False) is None
    assert shard_of(None, {}, gitlab=True) is None


@pytest.mark.parametrize("text", ["0/3", "4/3", "a/b", "3", "1/", "/2", "-1/2", "1/2/3"])
def test_a_share_that_is_not_i_of_n_is_refused(text: str) -> None:
    with pytest.raises(InputError, match=r"--shard is"):
        shard_of(text, {}, gitlab=False)


def test_gitlabs_total_without_an_index_is_refused_naming_the_variables() -> None:
    with pytest.raises(InputError, match=r"^CI_NODE_INDEX/CI_NODE_TOTAL is '/3'"):
        shard_of(None, {"CI_NODE_TOTAL": "3"}, gitlab=True)


def test_shares_deal_the_sorted_names_in_turn_and_keep_the_sets_order() -> None:
    # sorted: api, docs, web, worker -> share 1 of 2: api, web; share 2: docs, worker
    assert names(share(SET, Shard(1, 2, "--shard"))) == ["web", "api"]
    assert names(share(SET, Shard(2, 2, "--shard"))) == ["worker", "docs"]


@pytest.mark.parametrize("total", [2, 3, 4, 7])
def test_the_shares_of_every_job_cover_the_set_once(total: int) -> None:
    big = entries([{"name": f"svc-{n:02d}"} for n in range(11)], "provenance.images")
    dealt = [names(share(big, Shard(i, total, "--shard"))) for i in range(1, total + 1)]
    every = [name for part in dealt for name in part]
    assert sorted(every) == sorted(names(big)) and len(every) == len(set(every))
    assert max(map(len, dealt)) - min(map(len, dealt)) <= 1  # dealt evenly


def test_a_share_is_decided_by_name_not_by_the_order_of_the_list() -> None:
    reordered = tuple(reversed(SET))
    for index in (1, 2):
        shard = Shard(index, 2, "--shard")
        assert set(names(share(SET, shard))) == set(names(share(reordered, shard)))


def test_no_shard_is_the_whole_set() -> None:
    assert share(SET, None) == SET
