"""When a stream is due for promotion: one table row per rule, each with its status and reason;
and the edit and message of the promotion commit."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.fleetrepo.yamldoc import parse_yaml
from reconciler.promotion.check import PromotionStatus, check_promotion
from reconciler.promotion.commit import promotion_message, set_stream_commit, trailers
from reconciler.rollout.observed import Greenboot, HostObservation
from reconciler.rollout.reasons import Reason, ReasonCode
from reconciler.rollout.state import FailureRecord, GroupState, HostProgress, Lifecycle, Rollout
from tests.conftest import EXAMPLE_FLEET

STAGING = "8e1b4d5f2a7c9e0b3d6f1a4c7e2b5d8f0a3c6e9b2d5f8a1c4e7b0d3f6a9c2e5b"
PRODUCTION = "3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36"
OTHER = "ab" * 32
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
LAB = ("lab-call-01", "lab-call-02", "lab-call-03")


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return load_fleet_or_raise(DirectorySource(EXAMPLE_FLEET))


def lab_state(target: str = STAGING, minutes: tuple[int, ...] = (10, 20, 30)) -> GroupState:
    """The lab's rollout of ``target``: host i succeeded ``minutes[i]`` after T0."""
    rollout = Rollout(1, target, PRODUCTION, "rev-staging", T0, lifecycle=Lifecycle.COMPLETED)
    for host, after in zip(LAB, minutes, strict=False):
        rollout.hosts[host] = HostProgress(succeeded_at=T0 + timedelta(minutes=after))
    return GroupState("staging-lab", rollout)


def healthy(commit: str = STAGING, **overrides: Greenboot) -> dict[str, HostObservation]:
    return {
        host: HostObservation(
            host, T0, commit, "boot", overrides.get(host.replace("-", "_"), Greenboot.GREEN)
        )
        for host in LAB
    }


Case = Callable[
    [Fleet], tuple[Fleet, dict[str, GroupState], dict[str, HostObservation], set[str], datetime]
]


def with_production(fleet: Fleet, commit: str) -> Fleet:
    streams = dict(fleet.streams)
    streams["production"] = streams["production"].model_copy(update={"commit": commit})
    return dataclasses.replace(fleet, streams=streams)


CASES: dict[str, tuple[Case, PromotionStatus, str]] = {
    "due after 48h from the third success": (
        lambda f: (
            f,
            {"staging-lab": lab_state()},
            healthy(),
            set(),
            T0 + timedelta(hours=48, minutes=30),
        ),
        PromotionStatus.DUE,
        "ran for 2d on 3 healthy hosts with no failure",
    ),
    "soaking until 48h after the third success": (
        lambda f: (
            f,
            {"staging-lab": lab_state()},
            healthy(),
            set(),
            T0 + timedelta(hours=48, minutes=29),
        ),
        PromotionStatus.SOAKING,
        "has soaked 1d23h59m of 2d on 3 healthy hosts",
    ),
    "a host not healthy now does not count": (
        lambda f: (
            f,
            {"staging-lab": lab_state()},
            healthy(lab_call_02=Greenboot.RED),
            set(),
            T0 + timedelta(days=9),
        ),
        PromotionStatus.WAITING_FOR_HOSTS,
        "2 of 3 required hosts run 8e1b4d5f2a7c and are healthy",
    ),
    "hosts that never succeeded on the commit do not count": (
        lambda f: (
            f,
            {"staging-lab": lab_state(minutes=(10, 20))},
            healthy(),
            set(),
            T0 + timedelta(days=9),
        ),
        PromotionStatus.WAITING_FOR_HOSTS,
        "2 of 3 required hosts",
    ),
    "successes on another commit do not count": (
        lambda f: (
            f,
            {"staging-lab": lab_state(target=OTHER)},
            healthy(),
            set(),
            T0 + timedelta(days=9),
        ),
        PromotionStatus.WAITING_FOR_HOSTS,
        "0 of 3 required hosts",
    ),
    "a host that failed on the commit blocks it for good": (
        lambda f: (
            f,
            {
                "staging-lab": lab_state(),
                "callservers-dub": GroupState(
                    "callservers-dub",
                    failed={
                        "dub-call-01": {
                            STAGING: FailureRecord(
                                T0, Reason(ReasonCode.FELL_BACK, "greenboot fell back"), 1
                            )
                        }
                    },
                ),
            },
            healthy(),
            set(),
            T0 + timedelta(days=9),
        ),
        PromotionStatus.BLOCKED_BY_FAILURE,
        "failed on dub-call-01 (callservers-dub): greenboot fell back",
    ),
    "a halted rollout of the commit blocks it": (
        lambda f: (
            f,
            {
                "staging-lab": dataclasses.replace(
                    lab_state(),
                    rollout=dataclasses.replace(lab_state().rollout, lifecycle=Lifecycle.HALTED),
                )
            },  # type: ignore[arg-type]
            healthy(),
            set(),
            T0 + timedelta(days=9),
        ),
        PromotionStatus.BLOCKED_BY_FAILURE,
        "group staging-lab, whose rollout halted",
    ),
    "hosts silent for longer than staleAfter do not count": (
        lambda f: (
            f,
            {"staging-lab": lab_state()},
            {
                h: dataclasses.replace(o, received_at=T0 + timedelta(hours=1))
                for h, o in healthy().items()
            },
            set(),
            T0 + timedelta(days=2),
        ),
        PromotionStatus.WAITING_FOR_HOSTS,
        "0 of 3 required hosts",
    ),
    "never twice": (
        lambda f: (f, {"staging-lab": lab_state()}, healthy(), {STAGING}, T0 + timedelta(days=9)),
        PromotionStatus.ALREADY_PROMOTED,
        "was already promoted to production",
    ),
    "nothing to do when production runs it": (
        lambda f: (
            with_production(f, STAGING),
            {"staging-lab": lab_state()},
            healthy(),
            set(),
            T0 + timedelta(days=9),
        ),
        PromotionStatus.UP_TO_DATE,
        "production already runs 8e1b4d5f2a7c",
    ),
}


def reported_recently(
    observed: dict[str, HostObservation], now: datetime
) -> dict[str, HostObservation]:
    """Observations made by `healthy()` (stamped T0) as if they had just been reported."""
    return {
        h: dataclasses.replace(o, received_at=now - timedelta(minutes=1))
        if o.received_at == T0
        else o
        for h, o in observed.items()
    }


@pytest.mark.parametrize("name", list(CASES))
def test_promotion_rules(fleet: Fleet, name: str) -> None:
    case, status, message = CASES[name]
    current, states, observed, promoted, now = case(fleet)
    observed = reported_recently(observed, now)
    check = check_promotion(current, current.streams["production"], states, observed, promoted, now)
    assert check.status is status
    assert message in check.message


def test_due_check_carries_what_the_commit_message_needs(fleet: Fleet) -> None:
    now = T0 + timedelta(hours=50)
    observed = reported_recently(healthy(), now)
    check = check_promotion(
        fleet, fleet.streams["production"], {"staging-lab": lab_state()}, observed, set(), now
    )
    assert check.due
    assert check.healthy_hosts == LAB
    assert check.soaked_for == timedelta(hours=49, minutes=30)
    assert check.due_at == T0 + timedelta(hours=48, minutes=30)
    assert check.source_revision == "rev-staging"
    assert check.stream_commit == PRODUCTION  # what the promotion must find when it writes
    promotion = fleet.streams["production"].promotion
    assert promotion is not None
    message = promotion_message(check, promotion)
    assert message.splitlines()[0] == "production: promote 9.20261124.1 from staging"
    assert trailers(message) == {
        "Promoted-From": "staging",
        "Promoted-To": "production",
        "Promoted-Commit": STAGING,
        "Soaked-For": "2d1h30m",
        "Healthy-Hosts": "3",
        "Source-Revision": "rev-staging",
    }


STREAM = """\
kind: Stream   # the production stream
name: production
commit: {old}   # set by CI
version: "9.1"
ref: callos/production
"""


def test_stream_edit_changes_only_the_commit_and_version_lines() -> None:
    text = STREAM.format(old=PRODUCTION)
    edited = set_stream_commit(text, "streams/production.yaml", STAGING, "9.2")
    assert edited == STREAM.format(old=STAGING).replace('"9.1"', '"9.2"')
    document, problems = parse_yaml("x.yaml", edited.encode())
    assert not problems
    assert document is not None
    assert document.data["commit"] == STAGING


def test_stream_edit_adds_or_drops_the_version_with_the_commit() -> None:
    without = STREAM.format(old=PRODUCTION).replace('version: "9.1"\n', "")
    added = set_stream_commit(without, "s.yaml", STAGING, "9.2")
    assert f'commit: {STAGING}   # set by CI\nversion: "9.2"\n' in added
    dropped = set_stream_commit(STREAM.format(old=PRODUCTION), "s.yaml", STAGING, None)
    assert "version" not in dropped


def test_an_all_digit_commit_is_quoted_so_it_stays_a_string() -> None:
    digits = "1" * 64
    edited = set_stream_commit(STREAM.format(old=PRODUCTION), "s.yaml", digits, None)
    document, _ = parse_yaml("s.yaml", edited.encode())
    assert document is not None
    assert document.data["commit"] == digits


def test_a_version_added_to_a_crlf_file_keeps_its_line_endings() -> None:
    crlf = STREAM.format(old=PRODUCTION).replace('version: "9.1"\n', "").replace("\n", "\r\n")
    edited = set_stream_commit(crlf, "s.yaml", STAGING, "9.2")
    assert "\n" not in edited.replace("\r\n", "")
    assert 'version: "9.2"\r\n' in edited
