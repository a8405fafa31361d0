"""The rpm-ostree backend on real captured `rpm-ostree status --json` output and own cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.agent.rpmostree import RpmOstreeBackend, parse_status
from tests.agent_support import RecordingRunner

FIXTURES = Path(__file__).parent / "fixtures" / "rpm-ostree"
NEW = "967b7b8d624e6d10ff51c2e81ef198fae966c567ac2e9b479771c693d0987949"


def status(name: str):  # type: ignore[no-untyped-def]
    return parse_status((FIXTURES / name).read_text())


def test_staged_update() -> None:
    parsed = status("staged-update.json")
    assert parsed.error is None
    assert parsed.booted is not None
    assert parsed.staged is not None
    assert parsed.booted.version == "31.20200505.3.0"
    assert parsed.staged.base_checksum == NEW
    assert parsed.staged.version == "31.20200517.3.0"
    assert parsed.booted.origin == "fedora:fedora/x86_64/coreos/stable"
    assert parsed.rollback is None
    assert not parsed.transaction


def test_layered_packages_report_the_base_commit() -> None:
    parsed = status("layered-packages.json")
    assert parsed.booted is not None
    assert parsed.booted.checksum.startswith("ce718b90ce19")
    assert parsed.booted.base_checksum == (
        "41af286dc0b172ed2f1ca934fd2278de4a1192302ffa07087cea2682e7d372e3"
    )
    assert parsed.booted.origin == "fedora/x86_64/coreos/testing-devel"
    assert parsed.staged is None


def test_rollback_and_pinned() -> None:
    parsed = status("rollback-present.json")
    assert parsed.booted is not None
    assert parsed.rollback is not None
    assert parsed.booted.base_checksum == NEW
    assert parsed.staged is None
    assert not parsed.rollback.pinned
    assert status("pinned-rollback.json").rollback.pinned  # type: ignore[union-attr]


def test_running_transaction() -> None:
    assert status("transaction-running.json").transaction


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "{}",
        '{"deployments": 3}',
        '{"deployments": [{"booted": false}]}',
        '{"deployments": [{"booted": true}]}',
        '{"deployments": [{"booted": true, "checksum": 7}]}',
    ],
)
def test_unexpected_output_is_an_error_not_a_crash(text: str) -> None:
    parsed = parse_status(text)
    assert parsed.booted is None
    assert parsed.error is not None
    assert parsed.error.startswith("cannot understand rpm-ostree status")


def test_deploy_when_the_origin_is_unchanged_rebase_when_it_changes() -> None:
    runner = RecordingRunner()
    backend = RpmOstreeBackend(runner)
    current = status("staged-update.json")
    backend.stage("a" * 64, "fedora", "fedora/x86_64/coreos/stable", current)
    backend.stage("b" * 64, None, None, current)
    backend.stage("c" * 64, "callos", "callos/9/x86_64/production", current)
    backend.stage("d" * 64, None, "fedora/x86_64/coreos/next", current)
    assert runner.commands == [
        ["rpm-ostree", "deploy", "a" * 64],
        ["rpm-ostree", "deploy", "b" * 64],
        ["rpm-ostree", "rebase", "callos:callos/9/x86_64/production", "c" * 64],
        ["rpm-ostree", "rebase", "fedora:fedora/x86_64/coreos/next", "d" * 64],
    ]


def test_unstage_cleans_up_the_pending_deployment() -> None:
    runner = RecordingRunner()
    RpmOstreeBackend(runner).unstage()
    assert runner.commands == [["rpm-ostree", "cleanup", "--pending"]]
