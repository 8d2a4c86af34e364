"""Provenance annotations: which keys and values are allowed, and how they survive cosign's flags.

cosign takes annotations as `-a key=value`, and two of its parsers stand between us and the
signature payload:

* pflag reads each `-a` value as one CSV record (a StringSlice), so a `,` would split one
  annotation into two and a `"` would be a CSV syntax error. `cosign_annotation_arg` CSV-quotes
  the whole `key=value` whenever the value needs it.
* cosign then splits each item on *every* `=` and refuses anything but exactly two parts, so a
  value cannot hold `=`. `encode_value` percent-encodes `%` and `=` (and nothing else), and
  verification compares encoded forms, so what is signed is exactly what is checked.

Control characters are refused outright: a newline or an escape sequence in a signed annotation
would garble logs and reports that print it, and no CI variable worth signing contains one.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Iterable, Mapping

from provenance_tasks.errors import InputError
from provenance_tasks.models import Annotation
from provenance_tasks.references import validate_tag

__all__ = [
    "TAG_KEY",
    "USER_SOURCE",
    "cosign_annotation_arg",
    "cosign_annotation_args",
    "decode_value",
    "encode_value",
    "merge_annotations",
    "parse_annotation_flag",
    "validate_annotation",
    "validate_key",
    "validate_value",
]

#: The annotation the tool sets on each signature to the tag it signs.
TAG_KEY = "tag"

#: The source recorded for annotations given on the command line.
USER_SOURCE = "--annotation"

_KEY_RE = re.compile(r"[A-Za-z0-9._/-]+")
_DECODE_RE = re.compile(r"%(25|3D)")
_DECODED = {"25": "%", "3D": "="}

# The names of the C0 controls and DEL, so a message can say which character it found.
_C0_NAMES = (
    *("NUL", "SOH", "STX", "ETX", "EOT", "ENQ", "ACK", "BEL"),
    *("BS", "HT", "LF", "VT", "FF", "CR", "SO", "SI"),
    *("DLE", "DC1", "DC2", "DC3", "DC4", "NAK", "SYN", "ETB"),
    *("CAN", "EM", "SUB", "ESC", "FS", "GS", "RS", "US"),
)
_FRIENDLY = {"\n": "a newline", "\r": "a carriage return", "\t": "a tab"}


def describe_char(ch: str) -> str:
    """A human name for a control character, e.g. "a newline (U+000A LF)" or "U+001B ESC"."""
    code = ord(ch)
    if code < len(_C0_NAMES):
        name = f"U+{code:04X} {_C0_NAMES[code]}"
    elif code == 0x7F:
        name = "U+007F DEL"
    else:
        name = f"U+{code:04X}"
    friendly = _FRIENDLY.get(ch)
    return f"{friendly} ({name})" if friendly else name


def _is_control(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc"


def validate_key(key: str, source: str) -> str:
    """Return `key` if it is a valid annotation key, else raise naming the key and its source."""
    if not _KEY_RE.fullmatch(key):
        raise InputError(
            f"annotation key {key!r} (from {source}) is not valid",
            hint="annotation keys are letters, digits, '.', '_', '/' and '-', "
            "e.g. org.opencontainers.image.source",
        )
    return key


def validate_value(key: str, value: str, source: str) -> str:
    """Return `value` if it holds no control character, else raise naming key, source and char.

    The message never repeats the value: it may be long, and where it came from is enough to
    find it.
    """
    for index, ch in enumerate(value):
        if _is_control(ch):
            raise InputError(
                f"annotation {key!r} (from {source}) contains {describe_char(ch)} "
                f"at position {index}",
                hint=f"remove control characters (newlines, tabs, escapes) from {source}; "
                "annotation values are a single line of text",
            )
    return value


def validate_annotation(annotation: Annotation) -> Annotation:
    """Return `annotation` if its key and value are valid, else raise naming its source."""
    validate_key(annotation.key, annotation.source)
    validate_value(annotation.key, annotation.value, annotation.source)
    return annotation


def encode_value(value: str) -> str:
    """Percent-encode `%` then `=`, and nothing else, so cosign can carry the value."""
    return value.replace("%", "%25").replace("=", "%3D")


def decode_value(value: str) -> str:
    """The exact inverse of `encode_value`.

    Decoding is one left-to-right pass, so `%253D` (an encoded literal `%3D`) becomes `%3D`, not
    `=`. Any other `%` sequence, which `encode_value` never produces, is left as it is.
    """
    return _DECODE_RE.sub(lambda m: _DECODED[m.group(1)], value)


def _needs_quoting(value: str) -> bool:
    return "," in value or '"' in value or value != value.strip()


def cosign_annotation_arg(key: str, encoded_value: str) -> str:
    """The text to pass after cosign's `-a` so it reads back as exactly `key=encoded_value`.

    Plain `key=value` unless the value holds `,` or `"` or starts or ends with whitespace; then
    the whole pair is one CSV field in double quotes with inner quotes doubled, e.g.
    `"com.x=Doe, Jo"`, which is how pflag's CSV reader wants it.
    """
    validate_key(key, "cosign_annotation_arg")
    if "=" in encoded_value:
        raise InputError(
            f"annotation {key!r} has a raw '=' in its value",
            hint="encode the value with encode_value() before building the cosign argument",
        )
    validate_value(key, encoded_value, "cosign_annotation_arg")
    pair = f"{key}={encoded_value}"
    out = io.StringIO()
    if _needs_quoting(encoded_value):
        csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="").writerow([pair])
    else:
        csv.writer(out, quoting=csv.QUOTE_MINIMAL, lineterminator="").writerow([pair])
    arg = out.getvalue()
    if list(csv.reader([arg])) != [[pair]]:  # pragma: no cover - a bug, not an input problem
        raise AssertionError(f"annotation {key!r} does not round-trip through CSV")
    return arg


def cosign_annotation_args(annotations: Mapping[str, str]) -> list[str]:
    """`["-a", arg, "-a", arg, ...]` for a mapping of key to *encoded* value."""
    args: list[str] = []
    for key, encoded in annotations.items():
        args += ["-a", cosign_annotation_arg(key, encoded)]
    return args


def parse_annotation_flag(text: str, source: str = USER_SOURCE) -> Annotation:
    """Parse `KEY=VALUE` from the command line; the first `=` separates, the value may hold more."""
    key, sep, value = text.partition("=")
    if not sep:
        raise InputError(
            f"{source} {text!r} has no '='",
            hint=f"write it as {source} KEY=VALUE, e.g. {source} com.example.team=platform",
        )
    if not key:
        raise InputError(
            f"{source} {text!r} has no key before '='",
            hint=f"write it as {source} KEY=VALUE, e.g. {source} com.example.team=platform",
        )
    return validate_annotation(Annotation(key=key, value=value, source=source))


def _user_annotations(
    user: Mapping[str, str] | Iterable[str | Annotation],
) -> list[Annotation]:
    if isinstance(user, str):
        raise TypeError("user annotations must be a mapping or a list of KEY=VALUE strings")
    if isinstance(user, Mapping):
        items = [Annotation(key=k, value=v, source=USER_SOURCE) for k, v in user.items()]
        return [validate_annotation(a) for a in items]
    result: list[Annotation] = []
    for item in user:
        if isinstance(item, Annotation):
            result.append(validate_annotation(item))
        else:
            result.append(parse_annotation_flag(item, USER_SOURCE))
    return result


def merge_annotations(
    ci: Iterable[Annotation],
    user: Mapping[str, str] | Iterable[str | Annotation],
    tag: str | None,
) -> dict[str, str]:
    """The ordered key -> *encoded* value annotations for the signature of one tag.

    CI annotations come first in their order, then new user keys in theirs; a user key that a CI
    annotation also has replaces its value in place (the user knows better). `tag` is set last,
    to the tag being signed, so each signature says which tag it was made for; a user may not set
    it. With `tag` None or empty, the result is what every tag's signature has in common (no
    `tag` key). The same user key twice with different values is refused rather than guessed at.
    """
    if tag:
        validate_tag(tag, "tag")
    merged: dict[str, str] = {}
    for annotation in ci:
        validate_annotation(annotation)
        if annotation.key == TAG_KEY:
            raise InputError(
                f"annotation {TAG_KEY!r} (from {annotation.source}) is reserved",
                hint="the tool sets the tag annotation itself, once per tag it signs",
            )
        merged[annotation.key] = encode_value(annotation.value)
    seen: dict[str, str] = {}
    for annotation in _user_annotations(user):
        if annotation.key == TAG_KEY:
            raise InputError(
                f"{annotation.source} {TAG_KEY}=... is not allowed: the tool sets {TAG_KEY!r} "
                "on each signature to the tag it signs",
                hint=f"drop {annotation.source} {TAG_KEY}=...; choose the tags with --tag, or "
                "use another key for your own value",
            )
        if annotation.key in seen and seen[annotation.key] != annotation.value:
            raise InputError(
                f"annotation {annotation.key!r} is given twice in {annotation.source} "
                "with different values",
                hint=f"pass {annotation.key} once",
            )
        seen[annotation.key] = annotation.value
        merged[annotation.key] = encode_value(annotation.value)
    if tag:
        merged[TAG_KEY] = encode_value(tag)
    return merged
