"""Tag rules: what each gives on branch, tag and default-branch pipelines, and what is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from provenance_tasks.errors import InputError
from provenance_tasks.tag_rules import RefFacts, expand, is_rule

GITLAB_BRANCH = RefFacts(
    short_sha="0123abcd",
    sha_source="CI_COMMIT_SHORT_SHA",
    ref_name="feature/Login+UI",
    ref_source="CI_COMMIT_REF_NAME",
    is_tag=False,
    default_branch="main",
    default_branch_source="CI_DEFAULT_BRANCH",
)
GITLAB_MAIN = replace(GITLAB_BRANCH, ref_name="main")
GITLAB_MR = replace(GITLAB_MAIN, is_merge_request=True)  # a fork's main, in a merge request
GITLAB_NO_DEFAULT = replace(
    GITLAB_MAIN, default_branch=None, default_branch_source="CI_DEFAULT_BRANCH is not set"
)


def gitlab_tag(name: str) -> RefFacts:
    return replace(GITLAB_BRANCH, ref_name=name, ref_source="CI_COMMIT_TAG", is_tag=True)


GITHUB_SOURCE = "repository.default_branch of the event at GITHUB_EVENT_PATH"
GITHUB_BRANCH = RefFacts(
    short_sha="fedcba98",
    sha_source="GITHUB_SHA",
    ref_name="dev",
    ref_source="GITHUB_REF_NAME",
    is_tag=False,
    default_branch="trunk",
    default_branch_source=GITHUB_SOURCE,
)
GITHUB_DEFAULT = replace(GITHUB_BRANCH, ref_name="trunk")
GITHUB_PR = replace(GITHUB_BRANCH, ref_name="12/merge", is_merge_request=True)


def github_tag(name: str) -> RefFacts:
    return replace(GITHUB_BRANCH, ref_name=name, is_tag=True)


LOCAL = RefFacts(
    short_sha="a1b2c3d4",
    sha_source="git rev-parse HEAD",
    ref_name="main",
    ref_source="git rev-parse --abbrev-ref HEAD",
    is_tag=False,
    default_branch=None,
    default_branch_source="a local run does not know it",
)
LOCAL_EMPTY = replace(LOCAL, short_sha=None, ref_name=None)  # no commit yet, or detached

ALL = ("type=sha", "type=ref", "type=semver", "type=raw,value=latest,enable=default-branch")
LATEST = "type=raw,value=latest,enable=default-branch"


@pytest.mark.parametrize(
    ("entries", "facts", "tags", "notes"),
    [
        # GitLab
        (
            ALL,
            GITLAB_BRANCH,
            ("0123abcd", "feature-Login-UI"),
            (
                "type=semver: CI_COMMIT_REF_NAME feature/Login+UI is a branch, not a tag",
                f"{LATEST}: CI_COMMIT_REF_NAME feature/Login+UI is not the default branch main "
                "(CI_DEFAULT_BRANCH)",
            ),
        ),
        (
            ALL,
            GITLAB_MAIN,
            ("0123abcd", "main", "latest"),
            ("type=semver: CI_COMMIT_REF_NAME main is a branch, not a tag",),
        ),
        (
            (LATEST,),
            GITLAB_MR,
            (),
            (
                f"{LATEST}: CI_COMMIT_REF_NAME main is a merge or pull request, not the default "
                "branch",
            ),
        ),
        (
            (LATEST,),
            GITLAB_NO_DEFAULT,
            (),
            (f"{LATEST}: the default branch is not known (CI_DEFAULT_BRANCH is not set)",),
        ),
        (
            ALL,
            gitlab_tag("v1.2.3"),
            ("0123abcd", "v1.2.3", "1.2.3", "1.2", "1"),
            (f"{LATEST}: CI_COMMIT_TAG v1.2.3 is a tag, not the default branch",),
        ),
        (("type=semver",), gitlab_tag("1.2.3"), ("1.2.3", "1.2", "1"), ()),
        (("type=semver",), gitlab_tag("v0.10.0"), ("0.10.0", "0.10", "0"), ()),
        (("type=semver",), gitlab_tag("v1.2.3-rc.1"), ("1.2.3-rc.1",), ()),
        # build metadata: '+' becomes '-'; a release with it still moves 1.2 and 1
        (("type=semver",), gitlab_tag("v1.2.3+build.7"), ("1.2.3-build.7", "1.2", "1"), ()),
        (
            ("type=semver",),
            gitlab_tag("v2.0.0-beta.2+exp.sha.5114f85"),
            ("2.0.0-beta.2-exp.sha.5114f85",),
            (),
        ),
        *(
            (
                ("type=semver",),
                gitlab_tag(name),
                (),
                (f"type=semver: CI_COMMIT_TAG {name} is not a semantic version (v1.2.3 or 1.2.3)",),
            )
            for name in (
                "release-7",
                "v1.2",
                "v01.2.3",
                "V1.2.3",
                "v1.2.3-",
                "v1.2.3-01",
                "v1.2.3\u0661",
            )
        ),
        # GitHub
        (
            ALL,
            GITHUB_BRANCH,
            ("fedcba98", "dev"),
            (
                "type=semver: GITHUB_REF_NAME dev is a branch, not a tag",
                f"{LATEST}: GITHUB_REF_NAME dev is not the default branch trunk ({GITHUB_SOURCE})",
            ),
        ),
        (
            ALL,
            GITHUB_DEFAULT,
            ("fedcba98", "trunk", "latest"),
            ("type=semver: GITHUB_REF_NAME trunk is a branch, not a tag",),
        ),
        (
            ("type=ref", LATEST),
            GITHUB_PR,
            ("12-merge",),
            (
                f"{LATEST}: GITHUB_REF_NAME 12/merge is a merge or pull request, not the default "
                "branch",
            ),
        ),
        (("type=semver", "type=ref"), github_tag("v3.4.5"), ("3.4.5", "3.4", "3", "v3.4.5"), ()),
        (("type=semver",), github_tag("v3.4.5-alpha"), ("3.4.5-alpha",), ()),
        (
            ("type=semver",),
            github_tag("nightly"),
            (),
            ("type=semver: GITHUB_REF_NAME nightly is not a semantic version (v1.2.3 or 1.2.3)",),
        ),
        # enable=default-branch works on every rule type
        (("type=sha,enable=default-branch",), GITHUB_DEFAULT, ("fedcba98",), ()),
        # local: no default branch known, and a repository without commit or branch
        (
            ALL,
            LOCAL,
            ("a1b2c3d4", "main"),
            (
                "type=semver: git rev-parse --abbrev-ref HEAD main is a branch, not a tag",
                f"{LATEST}: the default branch is not known (a local run does not know it)",
            ),
        ),
        (
            ("type=sha", "type=ref", "type=semver"),
            LOCAL_EMPTY,
            (),
            (
                "type=sha: no commit is known (git rev-parse HEAD names none)",
                "type=ref: no branch or tag is known (git rev-parse --abbrev-ref HEAD names none)",
                "type=semver: no tag is known (git rev-parse --abbrev-ref HEAD names none)",
            ),
        ),
        # literals mixed with rules, de-duplicated in order
        (
            ("stable", "type=sha", "0123abcd", "type=raw,value=stable", "type=ref", "main"),
            GITLAB_MAIN,
            ("stable", "0123abcd", "main"),
            (),
        ),
        (
            ("type=semver", "1.2", "type=raw , value = 1"),
            gitlab_tag("v1.2.3"),
            ("1.2.3", "1.2", "1"),
            (),
        ),
        ((), GITLAB_MAIN, (), ()),
    ],
)
def test_expand(
    entries: tuple[str, ...], facts: RefFacts, tags: tuple[str, ...], notes: tuple[str, ...]
) -> None:
    assert expand(entries, facts) == (tags, notes)


@pytest.mark.parametrize(
    ("entry", "message", "hint"),
    [
        ("type=latest", "unknown rule type 'latest'", "type=sha, type=ref, type=semver"),
        ("type=", "unknown rule type ''", "type=raw,value=TAG"),
        ("type=semver,foo=1", "unknown key 'foo' in a type=semver rule", "takes only enable"),
        ("type=sha,value=x", "unknown key 'value' in a type=sha rule", "takes only enable"),
        ("type=raw,value=a,pattern={{version}}", "unknown key 'pattern'", "enable and value"),
        ("type=raw", "type=raw needs a value", "type=raw,value=TAG"),
        ("type=raw,value=", "type=raw needs a value", "type=raw,value=TAG"),
        ("type=raw,value=a b", "'a b' is not a valid image tag", "1 to 128 characters"),
        ("type=raw,value=-x,enable=default-branch", "'-x' is not a valid image tag", "'-'"),
        ("type=ref,enable=true", "enable='true' is not understood", "only default-branch"),
        ("type=sha,sha", "'sha' is not KEY=VALUE", "key=value pairs"),
        ("type=sha,,", "'' is not KEY=VALUE", "key=value pairs"),
        ("type=sha,type=ref", "type is given twice", "keep one type="),
        ("value=x,type=raw", "neither a tag nor a rule", "starting with type="),
        ("bad tag", "'bad tag' is not a valid image tag", "1 to 128 characters"),
    ],
)
def test_refused(entry: str, message: str, hint: str) -> None:
    # The raw value is checked on a branch pipeline too: a wrong release rule fails early.
    with pytest.raises(InputError) as caught:
        expand(("latest", entry), GITLAB_BRANCH, what="provenance.tags")
    assert caught.value.message.startswith(f"provenance.tags {entry!r}")
    assert message in caught.value.message
    assert caught.value.hint is not None
    assert hint in caught.value.hint


@pytest.mark.parametrize(
    ("entry", "facts", "message"),
    [
        # a branch called like a digest makes no tag, even sanitized
        ("type=ref", replace(GITLAB_BRANCH, ref_name="a" * 64), "is a digest"),
        ("type=semver", gitlab_tag("v1.2.3-" + "a" * 130), "at most 128"),
        ("type=sha", replace(GITLAB_BRANCH, short_sha="a" * 64), "is a digest"),
    ],
)
def test_results_that_are_no_tag_are_refused(entry: str, facts: RefFacts, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        expand((entry,), facts)
    assert f"--tag {entry!r}" in caught.value.message
    assert facts.ref_source in caught.value.message or facts.sha_source in caught.value.message


def test_is_rule() -> None:
    assert is_rule("type=sha")
    assert is_rule("type=raw,value=x")
    assert not is_rule("v1.2.3")
    assert not is_rule("value=x,type=raw")
    assert not is_rule(" type=sha")
