"""The README's generated parts are current, and what they say is what the code does: a setting
or a heading added without `python -m tests.readme --write` fails here."""

from __future__ import annotations

from typing import Any

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.options import OPTIONS, Option
from provenance_tasks.options.option import EVERY_TASK
from provenance_tasks.settings import resolve
from provenance_tasks.tasks import ns
from tests import readme

REGENERATE = "run: python -m tests.readme --write"


def test_the_readmes_settings_reference_is_the_one_options_make() -> None:
    found = readme.block(readme.README.read_text(), "settings")
    assert found is not None, "README.md lost its settings markers"
    assert found == readme.settings_reference(), REGENERATE
    rows = [line for line in found.splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [o.key for o in OPTIONS]


def test_the_readmes_contents_list_its_headings() -> None:
    text = readme.README.read_text()
    found = readme.block(text, "contents")
    assert found is not None, "README.md lost its contents markers"
    assert found == readme.contents(text), REGENERATE
    assert readme.rewrite(text) == text, REGENERATE


def test_contents_nest_the_third_level_number_a_repeat_and_skip_code() -> None:
    text = "\n".join(
        [
            "# Title",
            "## Use it",
            "### `provenance.images`, at once",
            "```sh",
            "## not a heading: a comment in a fenced block",
            "```",
            "#### too deep for the contents",
            "## Use it",
        ]
    )
    assert readme.contents(text) == "\n".join(
        [
            "- [Use it](#use-it)",
            "  - [`provenance.images`, at once](#provenanceimages-at-once)",
            "- [Use it](#use-it-1)",
        ]
    )


def test_every_heading_anchors_alike_on_github_and_gitlab() -> None:
    """GitLab makes two hyphens in a row one, GitHub keeps them: a title like `A - B` would
    link to nothing on one of them."""
    for _, title in readme.headings(readme.README.read_text()):
        assert "--" not in readme.anchor(title), title


def test_each_flag_in_the_reference_is_one_its_tasks_take() -> None:
    assert set(readme.TASK_ORDER) == EVERY_TASK == set(ns.tasks)
    taken = {
        name: {f"--{n}" for argument in task.get_arguments() for n in argument.names}
        for name, task in ns.tasks.items()
    }
    for option in OPTIONS:
        flag = readme.flag(option)
        for name in EVERY_TASK:
            assert (flag in taken[name]) == (name in option.tasks), (option.key, name)
    assert "--no-tlog" in taken["sign"] and "--no-attest" in taken["build-sign-verify"]


def _another_value(option: Option) -> tuple[str, Any]:
    """An environment text for `option` that resolves to other than its default, and what."""
    choices = {
        "mode": ("key", "key"),
        "bundle_format": ("new", "new"),
        "referrers": ("tag", "tag"),
        "log_format": ("json", "json"),
        "provenance": ("max", "mode=max"),
    }
    if option.key in choices:
        return choices[option.key]
    if isinstance(option.default, bool):
        return str(not option.default).lower(), not option.default
    if isinstance(option.default, int):
        return "7", 7
    if isinstance(option.default, list):
        return "a,b", ("a", "b")
    return "elsewhere", "elsewhere"


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.key)
def test_each_variable_in_the_reference_sets_its_setting(option: Option) -> None:
    name = readme.environment_name(option)
    if name is None:  # the reference says invoke.yaml only: a variable is refused, clearly
        with pytest.raises(InputError, match=f"provenance.{option.key}"):
            resolve(None, None, {f"INVOKE_PROVENANCE_{option.key.upper()}": "api"})
        return
    text, expected = _another_value(option)
    assert getattr(resolve(None, None, {name: text}), option.key) == expected
    assert getattr(resolve(None, None, {}), option.key) != expected


def test_a_cell_keeps_a_placeholder_visible_and_a_pipe_inside_the_cell() -> None:
    assert readme.cell("a <NAME>_REF | b `<kept>`") == "a &lt;NAME&gt;_REF \\| b `<kept>`"
