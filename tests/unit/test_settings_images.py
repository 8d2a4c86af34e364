"""Settings of a set of images: each image's own values over the run's (`for_image`),
provenance.images as a list of mappings only, and one engine (a host or a context)."""

from __future__ import annotations

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.settings import Settings, for_image, resolve


def run_settings() -> Settings:
    return resolve(
        {
            "context": ".",
            "image": "r.test/team",
            "tags": ["latest"],
            "platforms": ["linux/amd64"],
            "build_args": ["BASE=debian:12", "VERSION=1"],
            "annotations": ["team=core", "tier=gold"],
            "labels": ["org.example.owner=core", "org.example.tier=gold"],
            "predicates": ["sbom.json"],
        }
    )


# --- for_image ----------------------------------------------------------------------------------


def test_an_images_scalars_replace_the_runs() -> None:
    s = for_image(
        run_settings(),
        {
            "context": "services/web",
            "file": "web.Dockerfile",
            "image": "r.test/web",
            "target": "runtime",
        },
    )
    assert (s.context, s.file, s.image, s.target) == (
        "services/web",
        "web.Dockerfile",
        "r.test/web",
        "runtime",
    )


def test_an_images_lists_replace_the_runs() -> None:
    s = for_image(run_settings(), {"build_args": ["VERSION=2"], "predicates": ["web-sbom.json"]})
    assert s.build_args == ("VERSION=2",)  # BASE is not kept: a list replaces
    assert s.predicates == ("web-sbom.json",)


def test_tags_and_platforms_are_split_on_commas() -> None:
    s = for_image(
        run_settings(), {"tags": ["v1,v1.2", " edge "], "platforms": "linux/amd64,linux/arm64"}
    )
    assert s.tags == ("v1", "v1.2", "edge")
    assert s.platforms == ("linux/amd64", "linux/arm64")


def test_build_args_are_not_split_on_commas() -> None:
    s = for_image(run_settings(), {"build_args": ["LIST=a,b"]})
    assert s.build_args == ("LIST=a,b",)


def test_annotations_add_to_the_runs_by_key_and_the_images_value_wins() -> None:
    s = for_image(run_settings(), {"annotations": ["tier=silver", "component=web"]})
    assert s.annotations == ("team=core", "tier=silver", "component=web")


def test_labels_add_to_the_runs_by_key_and_the_images_value_wins() -> None:
    s = for_image(run_settings(), {"labels": ["org.example.tier=bronze"]})
    assert s.labels == ("org.example.owner=core", "org.example.tier=bronze")


def test_settings_an_image_does_not_give_stay_the_runs() -> None:
    base = run_settings()
    s = for_image(base, {"tags": ["v1"], "context": None})
    assert s.context == "." and s.image == "r.test/team"  # None: not given
    assert s.annotations == base.annotations and s.labels == base.labels
    assert s.platforms == base.platforms and s.build_args == base.build_args
    assert base.tags == ("latest",)  # the run's own settings are untouched


def test_an_images_list_that_is_no_list_is_refused() -> None:
    with pytest.raises(InputError, match=r"provenance\.build_args must be a list"):
        for_image(run_settings(), {"build_args": {"VERSION": "2"}})


# --- provenance.images --------------------------------------------------------------------------


def test_images_from_the_config_are_a_tuple_of_mappings() -> None:
    s = resolve({"images": [{"name": "web", "tags": ["v1"]}, {"name": "api"}]})
    assert s.images == ({"name": "web", "tags": ["v1"]}, {"name": "api"})


def test_no_images_is_an_empty_set() -> None:
    assert resolve({}).images == ()
    assert resolve({"images": []}).images == ()


@pytest.mark.parametrize("value", ["web,api", [{"name": "web"}, "api"], {"name": "web"}, 3])
def test_images_that_are_not_a_list_of_mappings_are_refused(value: object) -> None:
    with pytest.raises(InputError, match="must be a list of mappings"):
        resolve({"images": value})


def test_images_from_an_environment_variable_are_refused_with_a_hint() -> None:
    with pytest.raises(InputError) as caught:
        resolve({}, {}, {"INVOKE_PROVENANCE_IMAGES": '[{"name": "web"}]'})
    assert "provenance.images must be a list of mappings" in caught.value.message
    assert caught.value.hint and "invoke.yaml" in caught.value.hint
    assert "images_file" in caught.value.hint


# --- one image's settings, given for a set ------------------------------------------------------

SET = {"images": [{"name": "api", "context": "services/api"}, {"name": "worker"}]}


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        ({"context": "services/api"}, "--context services/api is one image's"),
        ({"file": "api.Dockerfile"}, "--file api.Dockerfile is one image's"),
        ({"context": "a", "file": "b"}, "--context a and --file b are one image's"),
    ],
)
def test_a_context_or_file_given_for_the_whole_set_is_refused_saying_how_to_pick(
    flags: dict[str, str], said: str
) -> None:
    with pytest.raises(InputError) as caught:
        resolve(SET, flags)
    assert caught.value.message.startswith(said), caught.value.message
    assert "every image of provenance.images" in caught.value.message
    assert caught.value.hint and "--only NAME" in caught.value.hint
    assert "images=[NAME]" in caught.value.hint


def test_an_images_file_is_a_set_too() -> None:
    with pytest.raises(InputError, match=r"every image of provenance\.images_file"):
        resolve({"images_file": "images.yml"}, {"context": "services/api"})


def test_only_naming_several_images_is_refused_with_their_names() -> None:
    with pytest.raises(InputError, match=r"--only names 2 images \(api, worker\)"):
        resolve(SET, {"context": "services/api", "only": ["api", "worker"]})


@pytest.mark.parametrize(
    ("config", "flags", "environ"),
    [
        (SET, {"context": "services/api", "only": ["api"]}, {}),  # one image named
        (SET, {"file": "x.Dockerfile"}, {"INVOKE_PROVENANCE_ONLY": "worker"}),
        (SET, {"context": "services/api"}, {"INVOKE_PROVENANCE_IMAGE_NAME": "api"}),
        ({**SET, "context": "services"}, {}, {}),  # invoke.yaml's: the set's default
        (SET, {}, {"INVOKE_PROVENANCE_CONTEXT": "services"}),  # the environment's, too
        (SET, {"image": "r.test/shop", "tags": ["v1"], "platforms": ["linux/amd64"]}, {}),
        ({}, {"context": "services/api"}, {}),  # no set: one image, as ever
    ],
)
def test_what_names_one_image_or_is_meant_for_every_image_is_kept(
    config: dict[str, object], flags: dict[str, object], environ: dict[str, str]
) -> None:
    # resolve raises InputError for a setting that names one image of a whole set: none here.
    resolve(config, flags, environ)


def test_the_settings_say_which_keys_the_caller_gave() -> None:
    s = resolve({"context": "x", "tags": ["v1"]}, {"context": "y", "only": ["api"], "digest": None})
    assert s.given == frozenset({"context", "only"})  # None: not given
    assert resolve({}, {"tags": []}).given == frozenset()  # an empty list: not given either


# --- one engine ---------------------------------------------------------------------------------


def test_a_host_and_a_context_together_are_refused() -> None:
    with pytest.raises(InputError, match=r"docker_host and provenance\.docker_context"):
        resolve({"docker_host": "tcp://engine:2376", "docker_context": "remote"})


def test_a_context_from_the_environment_over_a_host_in_the_config_is_refused() -> None:
    with pytest.raises(InputError, match="both name an engine"):
        resolve(
            {"docker_host": "tcp://engine:2376"}, {}, {"INVOKE_PROVENANCE_DOCKER_CONTEXT": "remote"}
        )


def test_a_host_or_a_context_alone_is_kept() -> None:
    assert resolve({"docker_context": "remote"}).docker_context == "remote"
    assert resolve({}, {"docker_host": "ssh://me@engine"}).docker_host == "ssh://me@engine"
    assert resolve({}).docker_host is None and resolve({}).docker_context is None


def test_a_tag_rule_keeps_its_commas_wherever_the_tags_come_from() -> None:
    rule = "type=raw,value=latest,enable=default-branch"
    assert resolve({"tags": ["type=sha", rule]}).tags == ("type=sha", rule)
    assert resolve({}, {"tags": [f"v1,{rule},type=semver"]}).tags == ("v1", rule, "type=semver")
    assert resolve({}, None, {"INVOKE_PROVENANCE_TAGS": f"{rule},a"}).tags == (rule, "a")
    base = resolve({})
    assert for_image(base, {"tags": f"type=sha,{rule}"}).tags == ("type=sha", rule)
