"""Settings: default < invoke.yaml < INVOKE_PROVENANCE_* < flag, through invoke's real Config.

The config is loaded the way invoke's executor does it for a task: the collection's defaults,
the project's invoke.yaml, then the shell environment, read from os.environ at that moment.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from invoke import Config
from invoke.exceptions import UncastableEnvVar

from provenance_tasks.errors import InputError
from provenance_tasks.settings import DEFAULTS, invoke_defaults, resolve
from provenance_tasks.tasks import ns

YAML = "provenance:\n  image: localhost:5000/from-yaml\n  tags: [a, b]\n"


@pytest.fixture(autouse=True)
def _no_provenance_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own INVOKE_PROVENANCE_* variables must not leak into these tests."""
    for name in list(os.environ):
        if name.startswith("INVOKE_"):
            monkeypatch.delenv(name)


def invoke_config(project: Path) -> dict[str, Any]:
    """The `provenance` namespace as a task would see it in c.config."""
    config = Config(project_location=str(project), lazy=True)  # lazy: no ~/.invoke.yaml
    config.load_collection(ns.configuration())
    config.load_project()
    config.load_shell_env()
    return dict(config["provenance"])


def project(tmp_path: Path, yaml: str | None = YAML) -> Path:
    if yaml is not None:
        (tmp_path / "invoke.yaml").write_text(yaml)
    return tmp_path


# --- precedence with invoke's Config ---------------------------------------------------------


def test_default_applies_when_nothing_sets_a_key(tmp_path: Path) -> None:
    settings = resolve(invoke_config(project(tmp_path, yaml=None)), {})
    assert settings.image is None
    assert settings.tags == ()
    assert settings.tlog is True
    assert settings.mode == "auto"
    assert settings.timeout == 120.0


def test_invoke_yaml_beats_the_default(tmp_path: Path) -> None:
    settings = resolve(invoke_config(project(tmp_path)), {})
    assert settings.image == "localhost:5000/from-yaml"
    assert settings.tags == ("a", "b")


def test_environment_beats_invoke_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_PROVENANCE_IMAGE", "localhost:5000/from-env")
    settings = resolve(invoke_config(project(tmp_path)), {})
    assert settings.image == "localhost:5000/from-env"


def test_flag_beats_environment_and_yaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_PROVENANCE_IMAGE", "localhost:5000/from-env")
    settings = resolve(invoke_config(project(tmp_path)), {"image": "localhost:5000/from-flag"})
    assert settings.image == "localhost:5000/from-flag"


def test_flag_not_given_leaves_config_in_place(tmp_path: Path) -> None:
    # Tasks pass None for an absent flag and [] for an absent repeatable flag.
    settings = resolve(invoke_config(project(tmp_path)), {"image": None, "tags": []})
    assert settings.image == "localhost:5000/from-yaml"
    assert settings.tags == ("a", "b")


def test_flag_list_replaces_the_config_list(tmp_path: Path) -> None:
    settings = resolve(invoke_config(project(tmp_path)), {"tags": ["f1"]})
    assert settings.tags == ("f1",)


def test_annotations_and_labels_from_flags_add_to_the_configured_ones(tmp_path: Path) -> None:
    yaml = "provenance:\n  annotations: [com.example.team=platform, com.example.tier=gold]\n"
    (tmp_path / "invoke.yaml").write_text(yaml + "  labels: [com.example.owner=ops]\n")
    settings = resolve(
        invoke_config(tmp_path),
        {
            "annotations": ["com.example.tier=silver", "com.example.app=web"],
            "labels": ["com.example.cost=42"],
        },
    )
    # The team's annotation stays; a key given both ways takes the flag's value.
    assert settings.annotations == (
        "com.example.team=platform",
        "com.example.tier=silver",
        "com.example.app=web",
    )
    assert settings.labels == ("com.example.owner=ops", "com.example.cost=42")
    assert resolve(invoke_config(tmp_path)).annotations[0] == "com.example.team=platform"


def test_a_dotenvs_comma_joined_tags_are_taken_back_by_tag() -> None:
    # IMAGE_TAGS=a,b from a dotenv, given back as --tag "$IMAGE_TAGS": two tags, not one bad one.
    flags = {"tags": ["1.2.3,latest", "extra"], "platforms": ["linux/amd64,linux/arm64"]}
    settings = resolve({}, flags)
    assert settings.tags == ("1.2.3", "latest", "extra")
    assert settings.platforms == ("linux/amd64", "linux/arm64")
    assert resolve({}, {"build_args": ["LIST=a,b"]}).build_args == ("LIST=a,b",)  # not split
    # `--tag "$IMAGE_TAGS"` of an unset variable is no tag given: the configured ones stay.
    assert resolve({"tags": ["configured"]}, {"tags": [""]}).tags == ("configured",)


def test_environment_list_is_a_comma_separated_string(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVOKE_PROVENANCE_TAGS", "x, y")
    monkeypatch.setenv("INVOKE_PROVENANCE_PLATFORMS", "linux/amd64,linux/arm64,")
    settings = resolve(invoke_config(project(tmp_path, yaml=None)), {})
    assert settings.tags == ("x", "y")
    assert settings.platforms == ("linux/amd64", "linux/arm64")


@pytest.mark.xfail(
    strict=True,
    raises=UncastableEnvVar,
    reason="invoke casts an env var by the merged value's type: a list in invoke.yaml makes "
    "INVOKE_PROVENANCE_TAGS raise invoke's UncastableEnvVar (a traceback, not an InputError)",
)
def test_environment_list_overrides_a_list_in_invoke_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("INVOKE_PROVENANCE_TAGS", "x, y")
    settings = resolve(invoke_config(project(tmp_path)), {})
    assert settings.tags == ("x", "y")


@pytest.mark.parametrize(("text", "expected"), [("false", False), ("true", True), ("0", False)])
def test_environment_boolean_is_parsed_from_its_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, expected: bool
) -> None:
    monkeypatch.setenv("INVOKE_PROVENANCE_TLOG", text)
    monkeypatch.setenv("INVOKE_PROVENANCE_DRY_RUN", "true" if not expected else "no")
    settings = resolve(invoke_config(project(tmp_path, yaml=None)), {})
    assert settings.tlog is expected
    assert settings.dry_run is (not expected)


def test_environment_false_overrides_a_true_boolean_in_invoke_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # invoke alone turns "false" into True here (it casts by the yaml value's type); the tasks
    # pass the raw environment to resolve(), which parses the text itself.
    monkeypatch.setenv("INVOKE_PROVENANCE_TLOG", "false")
    config = invoke_config(project(tmp_path, "provenance:\n  tlog: true\n"))
    assert resolve(config, {}).tlog is True  # what invoke's cast alone gives
    settings = resolve(config, {}, os.environ)
    assert settings.tlog is False


def test_boolean_flag_beats_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_PROVENANCE_TLOG", "true")
    settings = resolve(invoke_config(project(tmp_path, yaml=None)), {"tlog": False})
    assert settings.tlog is False


def test_environment_number_is_parsed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INVOKE_PROVENANCE_TIMEOUT", "45")
    assert resolve(invoke_config(project(tmp_path, yaml=None)), {}).timeout == 45.0


def test_invoke_defaults_declare_lists_booleans_and_numbers_as_none() -> None:
    declared = invoke_defaults()
    assert set(declared) == set(DEFAULTS)
    for key, default in DEFAULTS.items():
        if isinstance(default, list | bool | int | float):
            assert declared[key] is None, key
        else:
            assert declared[key] == default, key


def test_collection_declares_every_setting_to_invoke() -> None:
    assert ns.configuration()["provenance"] == invoke_defaults()


# --- bad configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("INVOKE_PROVENANCE_RETRY_BUDGET", "soon", "retry_budget"),
        ("INVOKE_PROVENANCE_TIMEOUT", "-5", "timeout"),
        ("INVOKE_PROVENANCE_RETRY_ATTEMPTS", "0", "retry_attempts"),
        ("INVOKE_PROVENANCE_RETRY_ATTEMPTS", "2.5", "retry_attempts"),
    ],
)
def test_bad_numbers_from_the_environment_are_input_errors(name: str, value: str, key: str) -> None:
    with pytest.raises(InputError) as caught:
        resolve(invoke_defaults(), {}, {name: value})
    assert key in caught.value.message and caught.value.hint


def test_unknown_key_in_invoke_yaml_is_an_input_error(tmp_path: Path) -> None:
    config = invoke_config(project(tmp_path, "provenance:\n  imgae: localhost:5000/x\n"))
    with pytest.raises(InputError) as caught:
        resolve(config, {})
    assert "provenance.imgae" in caught.value.message
    assert caught.value.hint is not None and "image" in caught.value.hint


def test_unknown_flag_is_a_programming_error() -> None:
    with pytest.raises(KeyError):
        resolve({}, {"imgae": "x"})


@pytest.mark.parametrize(
    ("key", "value", "choices"),
    [
        ("mode", "kms", "auto, key, keyless, certificate"),
        ("bundle_format", "protobuf", "classic, new, both"),
        ("referrers", "oras", "auto, tag, api"),
        ("log_format", "xml", "auto, console, json"),
    ],
)
def test_bad_choice_is_an_input_error_listing_the_choices(
    key: str, value: str, choices: str
) -> None:
    with pytest.raises(InputError) as caught:
        resolve({key: value}, {})
    assert f"provenance.{key}" in caught.value.message
    assert repr(value) in caught.value.message
    assert caught.value.hint == f"choose one of: {choices}"


@pytest.mark.parametrize(("key", "value"), [("mode", "KEY"), ("log_format", "JSON")])
def test_bad_choice_from_a_flag_is_an_input_error_too(key: str, value: str) -> None:
    with pytest.raises(InputError, match=f"provenance.{key}"):
        resolve({}, {key: value})


def test_bad_boolean_text_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"provenance\.tlog must be true or false"):
        resolve({"tlog": "maybe"}, {})


def test_bad_timeout_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"provenance\.timeout"):
        resolve({"timeout": "five minutes"}, {})


def test_list_setting_of_the_wrong_type_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"provenance\.tags"):
        resolve({"tags": 3}, {})


def test_buildx_provenance_is_off_a_mode_or_left_unset() -> None:
    assert resolve({}, {}).provenance is None
    assert resolve({"provenance": "false"}, {}).provenance == "off"
    assert resolve({"provenance": True}, {}).provenance == "mode=min"
    assert resolve({"provenance": "max"}, {}).provenance == "mode=max"
    assert resolve({"provenance": "mode=min"}, {}).provenance == "mode=min"
    with pytest.raises(InputError, match=r"provenance\.provenance is 'mode=full'"):
        resolve({"provenance": "mode=full"}, {})


# --- the console script, end to end, in dry-run (no docker: the argv recorder stands in) ------


def console_script() -> list[str]:
    script = Path(sys.executable).with_name("provenance-tasks")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "provenance_tasks.cli"]


def dry_run_build(folder: Path, env: Mapping[str, str], *flags: str) -> dict[str, str]:
    (folder / "Dockerfile").write_text("FROM scratch\n")
    environ = {"HOME": str(folder), "PATH": os.environ.get("PATH", os.defpath), **env}
    done = subprocess.run(
        [*console_script(), "build", "--dry-run", *flags],
        cwd=folder,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # A dry run writes no outputs: the settings show in the tags it would publish.
    assert not (folder / "provenance.env").exists()
    published = re.findall(
        r"copy the manifest of \S+ to ([^\s:]+(?::\d+)?/[^\s:]+):([\w.-]+)", done.stderr
    )
    assert published, done.stderr
    return {
        "IMAGE_URI": ":".join(published[0]),
        "IMAGE_TAGS": ",".join(tag for _, tag in published),
    }


def test_console_script_applies_the_same_precedence(tmp_path: Path) -> None:
    (tmp_path / "invoke.yaml").write_text("provenance:\n  image: localhost:5000/from-yaml\n")
    env = {"INVOKE_PROVENANCE_TAGS": "x, y"}
    assert dry_run_build(tmp_path, env)["IMAGE_URI"] == "localhost:5000/from-yaml:x"
    assert dry_run_build(tmp_path, env)["IMAGE_TAGS"] == "x,y"
    env["INVOKE_PROVENANCE_IMAGE"] = "localhost:5000/from-env"
    assert dry_run_build(tmp_path, env)["IMAGE_URI"] == "localhost:5000/from-env:x"
    flagged = dry_run_build(tmp_path, env, "--image", "localhost:5000/from-flag", "--tag", "t")
    assert flagged["IMAGE_URI"] == "localhost:5000/from-flag:t"
    assert flagged["IMAGE_TAGS"] == "t"
