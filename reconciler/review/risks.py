"""Values the fleet repo accepts but a reviewer should look at twice, as :class:`RiskWarning`
data: a soak too short for greenboot to have judged the hosts, a promotion that trusts one
host or a moment's soak, a reboot budget that lets a whole group go down at once.

They are raised for what the change touches, judged on the proposed revision: the groups the
review lists (their rollout, with these values, starts, changes or goes on) and the streams
whose promotion policy it adds or changes (every promoting stream when there is no base). A
risky value the change does not touch was reviewed when it was written. Warnings never block:
each is a legitimate choice somewhere (a lab may reboot all its hosts at once), and a check
that fails CI on a judgment call teaches people to skip it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from reconciler.durations import format_duration
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import Promotion
from reconciler.review.model import RiskCode, RiskWarning

#: A promotion soak shorter than this is flagged: a build has not met a night's traffic, a
#: timer or a log rotation in less than an hour.
PROMOTION_MIN_SOAK = timedelta(hours=1)


def risk_warnings(
    fleet: Fleet, groups: Iterable[str], streams: Iterable[str]
) -> tuple[RiskWarning, ...]:
    """Risky values of ``fleet`` (the proposed revision) in the promotions of ``streams`` and
    the rollout policies of ``groups``."""
    warnings: list[RiskWarning] = []
    for name in sorted(set(streams)):
        stream = fleet.streams.get(name)
        if stream is not None and stream.promotion is not None:
            warnings += _promotion_risks(fleet, name, stream.promotion)
    for name in sorted(set(groups)):
        if name in fleet.groups:
            warnings += _group_risks(fleet, name)
    return tuple(warnings)


def _promotion_risks(fleet: Fleet, stream: str, policy: Promotion) -> list[RiskWarning]:
    subject = f"stream {stream}"
    risks = []
    if policy.min_healthy_hosts == 1:
        risks.append(
            RiskWarning(
                RiskCode.PROMOTION_ONE_HEALTHY_HOST,
                subject,
                f"{stream} is promoted from {policy.from_stream} once the build is healthy on "
                "a single host (minHealthyHosts: 1): one host's luck decides for every "
                f"group that follows {stream}",
            )
        )
    timeout, slowest = _longest_health_timeout(fleet, policy.from_stream)
    floor = max(PROMOTION_MIN_SOAK, timeout)
    if policy.soak_time < floor:
        why = (
            f"less than {format_duration(PROMOTION_MIN_SOAK)}"
            if floor == PROMOTION_MIN_SOAK
            else f"less than the health timeout of {slowest} ({format_duration(timeout)}), "
            "so greenboot may not have judged its hosts yet"
        )
        risks.append(
            RiskWarning(
                RiskCode.PROMOTION_SOAK_SHORT,
                subject,
                f"{stream} is promoted from {policy.from_stream} after a soak of "
                f"{format_duration(policy.soak_time)}: {why}",
            )
        )
    return risks


def _longest_health_timeout(fleet: Fleet, stream: str) -> tuple[timedelta, str | None]:
    """The longest health timeout among the groups that follow ``stream``, and its group."""
    timeouts = [
        (fleet.rollout_policy(name).health_timeout, name)
        for name, group in sorted(fleet.groups.items())
        if group.stream == stream
    ]
    if not timeouts:
        return timedelta(0), None
    timeout, name = max(timeouts, key=lambda pair: pair[0])
    return timeout, name


def _group_risks(fleet: Fleet, name: str) -> list[RiskWarning]:
    policy = fleet.rollout_policy(name)
    subject = f"group {name}"
    risks = []
    if policy.soak_time < policy.health_timeout:
        risks.append(
            RiskWarning(
                RiskCode.SOAK_SHORTER_THAN_HEALTH_TIMEOUT,
                subject,
                f"soakTime {format_duration(policy.soak_time)} is shorter than "
                f"healthTimeout {format_duration(policy.health_timeout)}: the next wave "
                "may open before greenboot has judged the hosts of the last one",
            )
        )
    hosts = len(fleet.members[name])
    budget = policy.reboot_budget.max_unavailable
    if hosts > 1 and budget.resolve(hosts) >= hosts:
        group_by = policy.reboot_budget.group_by
        per = f" per {', '.join(group_by)}" if group_by else ""
        risks.append(
            RiskWarning(
                RiskCode.MAX_UNAVAILABLE_WHOLE_GROUP,
                subject,
                f"rebootBudget.maxUnavailable {budget}{per} lets all {hosts} hosts of the "
                "group update at once: nothing of it stays up while they reboot",
            )
        )
    return risks
