"""Annotations: what cosign can carry, and that what is signed is exactly what is verified."""

from __future__ import annotations

import csv
import itertools

import pytest

from provenance_tasks.annotations import (
    cosign_annotation_arg,
    cosign_annotation_args,
    decode_value,
    describe_char,
    encode_value,
    merge_annotations,
    parse_annotation_flag,
    validate_annotation,
)
from provenance_tasks.errors import InputError
from provenance_tasks.models import Annotation

TRICKY_VALUES = [
    "",
    " ",
    "plain",
    "Doe, Jo",
    'say "hi"',
    '"',
    '""',
    ",",
    ",,",
    "a=b",
    "=",
    "==x==",
    "%",
    "%%",
    "100%",
    "%3D",
    "%25",
    "%253D",
    "%3d",
    "%=%3D=%25",
    "a%3Db",
    "caf\u00e9",
    "\u65e5\u672c\u8a9e",
    "\U0001f680 rocket",
    "\u00a0non-breaking\u00a0",
    " leading",
    "trailing ",
    'k=v, x="y"',
    "https://gitlab.example.com/g/p/-/jobs/1?a=1&b=2#frag",
    "O'Brien; DROP TABLE",
    "back\\slash",
    "\u200bzero width",
]


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_encode_decode_round_trip(value: str) -> None:
    encoded = encode_value(value)
    assert decode_value(encoded) == value
    assert "=" not in encoded


def test_round_trip_of_every_short_string_over_the_special_characters() -> None:
    alphabet = ["%", "=", "2", "5", "3", "D", "d", ",", '"', "x"]
    for n in range(5):
        for chars in itertools.product(alphabet, repeat=n):
            value = "".join(chars)
            encoded = encode_value(value)
            assert "=" not in encoded
            assert decode_value(encoded) == value, value


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("a=b", "a%3Db"),
        ("%", "%25"),
        ("%3D", "%253D"),
        ("=%", "%3D%25"),
        ("Doe, Jo", "Doe, Jo"),
        ('"q"', '"q"'),
        ("caf\u00e9", "caf\u00e9"),
        ("", ""),
    ],
)
def test_encoding_touches_only_percent_and_equals(value: str, encoded: str) -> None:
    assert encode_value(value) == encoded


def test_decode_leaves_sequences_encode_never_makes() -> None:
    assert decode_value("%41%3d%") == "%41%3d%"


@pytest.mark.parametrize("value", TRICKY_VALUES)
def test_cosign_arg_reads_back_as_one_csv_field(value: str) -> None:
    key = "com.example.x"
    encoded = encode_value(value)
    arg = cosign_annotation_arg(key, encoded)
    rows = list(csv.reader([arg]))
    assert rows == [[f"{key}={encoded}"]]
    # cosign then splits on '=' and wants exactly two parts.
    assert rows[0][0].split("=") == [key, encoded]


@pytest.mark.parametrize(
    ("value", "arg"),
    [
        ("v", "k=v"),
        ("", "k="),
        ("Doe, Jo", '"k=Doe, Jo"'),
        ('say "hi"', '"k=say ""hi"""'),
        (" x", '"k= x"'),
        ("x ", '"k=x "'),
        ("caf\u00e9", "k=caf\u00e9"),
        ("a%3Db", "k=a%3Db"),
    ],
)
def test_cosign_arg_quotes_only_when_needed(value: str, arg: str) -> None:
    assert cosign_annotation_arg("k", value) == arg


def test_cosign_arg_refuses_unencoded_value() -> None:
    with pytest.raises(InputError, match="raw '='"):
        cosign_annotation_arg("k", "a=b")


def test_cosign_annotation_args() -> None:
    assert cosign_annotation_args({"a": "1", "b": "x, y"}) == ["-a", "a=1", "-a", '"b=x, y"']


CONTROL_CASES = [
    ("line\nbreak", "a newline (U+000A LF)"),
    ("carriage\rreturn", "a carriage return (U+000D CR)"),
    ("esc\x1b[31mred", "U+001B ESC"),
    ("tab\there", "a tab (U+0009 HT)"),
    ("nul\x00", "U+0000 NUL"),
    ("del\x7f", "U+007F DEL"),
    ("c1\x85next-line", "U+0085"),
    ("bell\x07", "U+0007 BEL"),
]


@pytest.mark.parametrize(("value", "described"), CONTROL_CASES)
def test_control_characters_are_refused_naming_key_source_and_char(
    value: str, described: str
) -> None:
    annotation = Annotation("com.gitlab.ci.user.name", value, "GITLAB_USER_NAME")
    with pytest.raises(InputError) as err:
        validate_annotation(annotation)
    message = err.value.message
    assert "com.gitlab.ci.user.name" in message
    assert "GITLAB_USER_NAME" in message
    assert described in message
    assert value not in message


@pytest.mark.parametrize(("value", "described"), CONTROL_CASES)
def test_control_characters_are_refused_in_merge(value: str, described: str) -> None:
    ci = (Annotation("com.x", value, "SOME_VAR"),)
    with pytest.raises(InputError) as err:
        merge_annotations(ci, [], "v1")
    assert "SOME_VAR" in err.value.message
    assert described in err.value.message
    with pytest.raises(InputError) as err:
        merge_annotations((), [f"com.y={value}"], "v1")
    assert "--annotation" in err.value.message
    assert "com.y" in err.value.message


def test_describe_char() -> None:
    assert describe_char("\x1b") == "U+001B ESC"
    assert describe_char("\n") == "a newline (U+000A LF)"


@pytest.mark.parametrize("key", ["", "a b", "k=v", "caf\u00e9", "a,b", 'a"b', "a\nb"])
def test_invalid_keys_name_the_key_and_source(key: str) -> None:
    with pytest.raises(InputError) as err:
        validate_annotation(Annotation(key, "v", "--annotation"))
    assert repr(key) in err.value.message
    assert "--annotation" in err.value.message


@pytest.mark.parametrize("key", ["a", "org.opencontainers.image.source", "A-b_c/d.E", "0"])
def test_valid_keys(key: str) -> None:
    assert validate_annotation(Annotation(key, "v", "x")).key == key


def test_parse_annotation_flag_splits_on_first_equals() -> None:
    assert parse_annotation_flag("k=a=b=c", "--annotation") == Annotation(
        "k", "a=b=c", "--annotation"
    )
    assert parse_annotation_flag("k=", "--annotation") == Annotation("k", "", "--annotation")


@pytest.mark.parametrize(("text", "in_message"), [("novalue", "no '='"), ("=v", "no key")])
def test_parse_annotation_flag_errors(text: str, in_message: str) -> None:
    with pytest.raises(InputError) as err:
        parse_annotation_flag(text, "--annotation")
    assert in_message in err.value.message
    assert err.value.hint is not None and "KEY=VALUE" in err.value.hint


CI = (
    Annotation("com.gitlab.ci.user.name", "Doe, Jo", "GITLAB_USER_NAME"),
    Annotation("com.gitlab.ci.pipeline.id", "42", "CI_PIPELINE_ID"),
    Annotation("org.opencontainers.image.source", "https://x/y?a=b", "CI_PROJECT_URL"),
)


def test_merge_orders_ci_then_user_then_tag_and_encodes() -> None:
    merged = merge_annotations(CI, ["team=a=b", "com.gitlab.ci.pipeline.id=override"], "v1")
    assert list(merged.items()) == [
        ("com.gitlab.ci.user.name", "Doe, Jo"),
        ("com.gitlab.ci.pipeline.id", "override"),
        ("org.opencontainers.image.source", "https://x/y?a%3Db"),
        ("team", "a%3Db"),
        ("tag", "v1"),
    ]


def test_merge_accepts_a_mapping_and_annotations() -> None:
    assert merge_annotations((), {"k": "%"}, "t") == {"k": "%25", "tag": "t"}
    user = (Annotation("k", "v", "--annotation"),)
    assert merge_annotations((), user, "t") == {"k": "v", "tag": "t"}


def test_merge_without_tag_gives_the_common_part() -> None:
    assert "tag" not in merge_annotations(CI, [], None)
    assert "tag" not in merge_annotations(CI, [], "")


@pytest.mark.parametrize("user", [["tag=mine"], {"tag": "mine"}])
def test_user_tag_annotation_is_refused(user: list[str] | dict[str, str]) -> None:
    with pytest.raises(InputError) as err:
        merge_annotations(CI, user, "v1")
    assert "tag" in err.value.message
    assert err.value.hint is not None and "--tag" in err.value.hint


def test_user_key_twice_with_different_values_is_refused() -> None:
    with pytest.raises(InputError, match="twice"):
        merge_annotations((), ["k=1", "k=2"], "v1")
    assert merge_annotations((), ["k=1", "k=1"], "v1") == {"k": "1", "tag": "v1"}


def test_merge_validates_the_tag() -> None:
    with pytest.raises(InputError, match="digest"):
        merge_annotations(CI, [], "sha256:" + "a" * 64)


def test_merged_values_survive_cosign_arguments() -> None:
    user = [f"k{i}={v}" for i, v in enumerate(TRICKY_VALUES)]
    merged = merge_annotations(CI, user, "v1")
    for key, encoded in merged.items():
        (field,) = next(csv.reader([cosign_annotation_arg(key, encoded)]))
        k, v = field.split("=")
        assert (k, v) == (key, encoded)
    decoded = {k: decode_value(v) for k, v in merged.items()}
    for i, value in enumerate(TRICKY_VALUES):
        assert decoded[f"k{i}"] == value
