"""The task layer made from the settings table: each task's flags, and no automatic short flags."""

from __future__ import annotations

import pytest

from provenance_tasks.settings import DEFAULTS, OPTIONS
from provenance_tasks.tasks import (
    attest,
    build,
    build_sign_verify,
    login,
    ns,
    publish,
    sign,
    verify,
    verify_attestation,
)

LOGIN = {"registry", "username", "password_env", "password_stdin", "docker_config", "log_format"}
BUILD = {
    "context",
    "file",
    "image",
    "tag",
    "build_arg",
    "secret",
    "platform",
    "target",
    "builder",
    "pull",
    "cache_from",
    "cache_to",
    "report",
    "label",
    "reproducible",
    "require_clean",
    "oci_annotation",
    "no_bake",
}
SIGNING = {"image", "tag", "annotation", "mode", "key", "certificate_chain", "no_tlog", "report"}
SET = {"only", "jobs", "fail_fast", "shard"}  # the images of provenance.images
NAMED = SET | {"image_name"}  # a task on one image's outputs names it
FLAGS = {
    "login": LOGIN | {"dry_run"},
    "build": BUILD | LOGIN | SET | {"dry_run", "stage"},
    "sign": SIGNING
    | LOGIN
    | NAMED
    | {"digest", "certificate", "bundle_format", "referrers", "dry_run"},
    "verify": SIGNING
    | LOGIN
    | NAMED
    | {
        "digest",
        "public_key",
        "trusted_root",
        "identity",
        "issuer",
        "dry_run",
    },
    "publish": SIGNING
    | LOGIN
    | NAMED
    | {
        "digest",
        "public_key",
        "trusted_root",
        "identity",
        "issuer",
        "dry_run",
    },
    "attest": SIGNING
    | LOGIN
    | NAMED
    | {"digest", "certificate", "dry_run", "predicate", "referrers"},
    "verify-attestation": SIGNING
    | LOGIN
    | NAMED
    | {
        "digest",
        "public_key",
        "trusted_root",
        "identity",
        "issuer",
        "dry_run",
        "builder_id",
    },
    "build-sign-verify": BUILD
    | SIGNING
    | LOGIN
    | SET
    | {
        "certificate",
        "bundle_format",
        "referrers",
        "public_key",
        "trusted_root",
        "identity",
        "issuer",
        "keep_docker_config",
        "dry_run",
        "push_then_sign",
        "no_attest",
        "predicate",
        "builder_id",
    },
}


@pytest.mark.parametrize(
    "task", [login, build, sign, attest, verify, verify_attestation, publish, build_sign_verify]
)
def test_each_task_takes_the_flags_the_table_gives_it(task: object) -> None:
    name = task.name  # type: ignore[attr-defined]
    flags = {arg.name.replace("-", "_") for arg in task.get_arguments()}  # type: ignore[attr-defined]
    assert flags == FLAGS[name]
    shorts = [n for arg in task.get_arguments() for n in arg.names if len(n) == 1]  # type: ignore[attr-defined]
    assert shorts == []  # -h is help, and no letter means two things


def test_every_setting_is_declared_to_invoke_once() -> None:
    assert len({o.key for o in OPTIONS}) == len(OPTIONS) == len(DEFAULTS)
    assert set(ns.configuration()["provenance"]) == set(DEFAULTS)
    assert all(o.help for o in OPTIONS)
