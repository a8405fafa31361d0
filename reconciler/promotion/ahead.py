"""Promotions in a prediction: the reconciler's own promotion commits, made in virtual time.

A change to `staging` ends with production rolling out too, once the build has soaked on
enough healthy hosts: a prediction that stopped at staging would answer "when is the fleet
done?" wrongly. :class:`PredictedPromotions` is the prediction's
:class:`~reconciler.rollout.prediction.FleetChanges`: at each moment it asks the same pure
:func:`check_promotion` the daemon asks, with the simulated hosts' reports, and when a stream
is due it takes in the fleet as the promotion commit would leave it. As in the rest of the
prediction, the promotion policy's health checks are assumed to pass at each evaluation, the
first when the build has enough healthy hosts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.models import Stream
from reconciler.promotion.check import PromotionCheck, PromotionStatus, check_promotion
from reconciler.rollout.assumedgates import passing_sample
from reconciler.rollout.gates import GateSample
from reconciler.rollout.observed import HostObservation
from reconciler.rollout.prediction import FleetChange, Milestone, Reports
from reconciler.rollout.state import GroupState

#: A stream in these needs no promotion: nothing is waiting.
_SETTLED = frozenset({PromotionStatus.UP_TO_DATE, PromotionStatus.ALREADY_PROMOTED})
#: Promotions whose health checks are being evaluated (as the daemon's gate runner does).
_EVALUATED = frozenset({PromotionStatus.SOAKING, PromotionStatus.WAITING_FOR_HEALTH_CHECKS})


def promoted(fleet: Fleet, check: PromotionCheck) -> Fleet:
    """``fleet`` as the promotion commit leaves it: the stream runs the source's build."""
    stream = fleet.streams[check.stream]
    taken = stream.model_copy(update={"commit": check.commit, "version": check.version})
    return dataclasses.replace(
        fleet, streams={**fleet.streams, check.stream: taken}, host_groups=fleet.host_groups
    )


def _source_reports(fleet: Fleet, stream: Stream, reports: Reports) -> dict[str, HostObservation]:
    """What the hosts of the groups on the stream promoted from report now."""
    assert stream.promotion is not None
    source = stream.promotion.from_stream
    found = {}
    for group, model in fleet.groups.items():
        if model.stream == source:
            for host in fleet.members.get(group, ()):
                if (seen := reports(host)) is not None:
                    found[host] = seen
    return found


@dataclass
class PredictedPromotions:
    """Each stream with a `promotion` policy, promoted the moment it is due."""

    #: (stream, source commit) promotions made so far: never the same one twice.
    made: set[tuple[str, str]] = field(default_factory=set)
    #: When each (stream, source commit)'s health checks were first evaluated.
    evaluated_since: dict[tuple[str, str], datetime] = field(default_factory=dict)

    def __call__(
        self,
        fleet: Fleet,
        now: datetime,
        states: Mapping[str, GroupState],
        reports: Reports,
    ) -> FleetChange:
        milestones: list[Milestone] = []
        look_again: list[datetime] = []
        waiting: list[str] = []
        for name in sorted(fleet.streams):  # one at a time: a promotion may feed the next
            stream = fleet.streams[name]
            if stream.promotion is None:
                continue
            observed = _source_reports(fleet, stream, reports)
            check = self._check(fleet, stream, states, observed, now)
            if check.due:
                fleet = promoted(fleet, check)
                self.made.add((check.stream, check.commit))
                version = check.version or check.commit[:12]
                milestones.append(
                    Milestone(
                        now,
                        f"{check.stream} takes {version} from {check.source}",
                        check.stream,
                        check.source,
                    )
                )
                continue
            if check.status not in _SETTLED:
                waiting.append(f"{check.stream} is not promoted: {check.message}")
            if check.status is PromotionStatus.SOAKING and check.due_at is not None:
                look_again.append(check.due_at)
            elif check.status is PromotionStatus.WAITING_FOR_HEALTH_CHECKS:
                look_again.append(self._next_evaluation(stream, check, now))
        return FleetChange(
            fleet if milestones else None,
            tuple(milestones),
            min(look_again, default=None),
            tuple(waiting),
        )

    def _check(
        self,
        fleet: Fleet,
        stream: Stream,
        states: Mapping[str, GroupState],
        observed: Mapping[str, HostObservation],
        now: datetime,
    ) -> PromotionCheck:
        made = {commit for name, commit in self.made if name == stream.name}
        first = check_promotion(fleet, stream, states, observed, made, now)
        if first.status not in _EVALUATED or first.policy is None:
            return first
        since = self.evaluated_since.setdefault((stream.name, first.commit), now)
        samples: list[GateSample] = []
        for health_check in first.policy.health_checks:
            at = since
            while at <= now:
                samples.append(passing_sample(health_check, at))
                at += health_check.interval
        samples.sort(key=lambda sample: sample.at)
        return check_promotion(fleet, stream, states, observed, made, now, samples)

    def _next_evaluation(self, stream: Stream, check: PromotionCheck, now: datetime) -> datetime:
        since = self.evaluated_since[(stream.name, check.commit)]
        assert check.policy is not None  # waiting for its health checks
        return min(
            since + ((now - since) // c.interval + 1) * c.interval
            for c in check.policy.health_checks
        )
