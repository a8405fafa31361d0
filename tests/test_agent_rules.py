"""One set of rules for OSTree remotes, refs and commits: the fleet repo and the agent agree."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from reconciler.agent.rules import is_commit, is_ref, is_remote
from reconciler.fleetrepo.models import Pin, Stream

COMMIT = "3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36"

REMOTES = [
    ("callos", True),
    ("fedora", True),
    ("my_remote.v2-b", True),
    ("_private", True),
    ("9", True),
    ("-oops", False),
    ("--help", False),
    (".hidden", False),
    ("..", False),
    ("callos/x", False),
    ("callos:x", False),
    ("callos\n", False),
    ("call os", False),
    ("callos\t", False),
    ("callos\x00", False),
    ("cällos", False),
    ("", False),
]

REFS = [
    ("callos/9/x86_64/production", True),
    ("fedora/x86_64/coreos/stable", True),
    ("a", True),
    ("a..b", True),  # OSTree allows it, and it is no path segment
    ("_x/y-1.2", True),
    ("-oops", False),
    ("--help", False),
    ("a/../../b", False),
    ("../b", False),
    ("a/./b", False),
    ("a/.b", False),
    ("a/-b", False),
    ("/a", False),
    ("a/", False),
    ("a//b", False),
    ("a b", False),
    ("a/b\n", False),
    ("a/b\r", False),
    ("a:b", False),
    ("a@b", False),
    ("a/b\x7f", False),
    ("", False),
]

COMMITS = [
    (COMMIT, True),
    (COMMIT + "\n", False),
    (COMMIT.upper(), False),
    (COMMIT[:63], False),
    ("-" + COMMIT[1:], False),
    ("--reboot", False),
]


def _stream_accepts(**fields: str) -> bool:
    values = {"kind": "Stream", "name": "s", "remote": "callos", "ref": "callos/x"}
    values = {"apiVersion": "ostree-fleet/v1alpha1", **values, "commit": COMMIT, **fields}
    try:
        Stream.model_validate(values)
    except ValidationError:
        return False
    return True


def _pin_accepts(**fields: str) -> bool:
    try:
        Pin.model_validate({"reason": "r", "commit": COMMIT, **fields})
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize(("value", "valid"), REMOTES)
def test_remote_rules(value: str, valid: bool) -> None:
    assert is_remote(value) is valid
    assert _stream_accepts(remote=value) is valid
    assert _pin_accepts(remote=value) is valid


@pytest.mark.parametrize(("value", "valid"), REFS)
def test_ref_rules(value: str, valid: bool) -> None:
    assert is_ref(value) is valid
    assert _stream_accepts(ref=value) is valid
    assert _pin_accepts(ref=value) is valid


@pytest.mark.parametrize(("value", "valid"), COMMITS)
def test_commit_rules(value: str, valid: bool) -> None:
    assert is_commit(value) is valid
    assert _stream_accepts(commit=value) is valid
    assert _pin_accepts(commit=value) is valid


@pytest.mark.parametrize("value", [None, 5, ["callos"], b"callos"])
def test_only_strings_pass(value: object) -> None:
    assert not is_commit(value)
    assert not is_remote(value)
    assert not is_ref(value)
