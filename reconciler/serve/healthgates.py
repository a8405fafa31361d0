"""Evaluating health checks against Prometheus on a schedule, for the planner's gates.

Which checks are due comes from what the service already knows: a group's plan names its
soaking wave's gate (:class:`reconciler.rollout.wavegate.WaveGate`: the wave's hosts, since
when), and a stream's promotion check names the source build and its healthy hosts. Each
due check's query is rendered for that scope, sent to Prometheus from a worker thread (the
event loop keeps answering agents), judged (:func:`reconciler.rollout.gates.classify`) and
stored durably as a sample; then the group is planned again, or the promotion looked at
again. An unreachable Prometheus gives an *inconclusive* sample: the gate waits, it never
passes by default.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from reconciler.clock import Clock
from reconciler.fleetrepo.healthchecks import HealthCheck, render_query
from reconciler.promotion.check import PromotionCheck, PromotionStatus
from reconciler.rollout.gates import GateSample, classify
from reconciler.serve.prometheus import PrometheusClient, QueryAnswer
from reconciler.serve.service import FleetService
from reconciler.state.gatesamples import group_scope, stream_scope

logger = logging.getLogger(__name__)

#: Promotion checks with these statuses have a source build on enough healthy hosts.
_GATED_PROMOTIONS = frozenset(
    {PromotionStatus.SOAKING, PromotionStatus.WAITING_FOR_HEALTH_CHECKS, PromotionStatus.DUE}
)

Query = Callable[[str], QueryAnswer]


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One check to evaluate now, its query rendered for the scope it is about."""

    scope: str
    check: HealthCheck
    query: str
    group: str | None  # the group to plan again once the sample is stored (None: a stream)


def due_evaluations(
    service: FleetService, promotions: Sequence[PromotionCheck], now: datetime
) -> list[Evaluation]:
    """The checks whose last evaluation in their scope is at least their interval old."""
    due: list[Evaluation] = []
    for group, plan in sorted(service.plans.items()):
        if plan.gate is None:
            continue
        target = plan.spec.target
        scope = group_scope(group)
        for check in plan.spec.health_checks:
            if _due(service, scope, check, now):
                query = render_query(
                    check.query,
                    group=group,
                    hosts=plan.gate.hosts,
                    commit=target.commit,
                    version=target.version,
                    stream=target.stream or "",
                )
                due.append(Evaluation(scope, check, query, group))
    for promotion in promotions:
        if promotion.status not in _GATED_PROMOTIONS or promotion.policy is None:
            continue
        scope = stream_scope(promotion.stream, promotion.commit)
        groups = sorted(
            name for name, g in service.fleet.groups.items() if g.stream == promotion.source
        )
        for check in promotion.policy.health_checks:
            if _due(service, scope, check, now):
                query = render_query(
                    check.query,
                    group="|".join(groups),
                    hosts=promotion.healthy_hosts,
                    commit=promotion.commit,
                    version=promotion.version,
                    stream=promotion.source,
                )
                due.append(Evaluation(scope, check, query, None))
    return due


def _due(service: FleetService, scope: str, check: HealthCheck, now: datetime) -> bool:
    for sample in reversed(service.gate_samples.get(scope, ())):
        if sample.check == check.name:
            return now - sample.at >= check.interval
    return True


class GateRunner:
    """Evaluates due checks; the daemon calls :meth:`evaluate_due` every few seconds."""

    def __init__(
        self,
        service: FleetService,
        query: Query,
        clock: Clock,
        on_stream_sample: Callable[[], None] = lambda: None,
    ) -> None:
        self.service, self.query, self.clock = service, query, clock
        self.on_stream_sample = on_stream_sample

    @classmethod
    def for_prometheus(
        cls,
        service: FleetService,
        client: PrometheusClient,
        clock: Clock,
        **kwargs: Callable[[], None],
    ) -> GateRunner:
        return cls(service, client.query, clock, **kwargs)

    async def evaluate_due(self) -> int:
        """Evaluate every due check once; return how many were evaluated."""
        service = self.service
        promotions = service.promotion_checks() if _any_promotion_checks(service) else []
        due = due_evaluations(service, promotions, self.clock.now())
        if not due:
            return 0
        answers = await asyncio.gather(*(asyncio.to_thread(self.query, e.query) for e in due))
        planned: set[str] = set()
        streams = False
        for evaluation, answer in zip(due, answers, strict=True):
            sample = self._sample(evaluation, answer)
            service.record_gate_sample(evaluation.scope, sample)
            service.metrics.gate_evaluations.labels(
                evaluation.scope, sample.check, sample.outcome
            ).inc()
            if evaluation.group is not None:
                planned.add(evaluation.group)
            else:
                streams = True
        for group in sorted(planned):
            service.look_again(group)
        if streams:
            self.on_stream_sample()
        return len(due)

    def _sample(self, evaluation: Evaluation, answer: QueryAnswer) -> GateSample:
        outcome, value, detail = classify(evaluation.check, answer.values, answer.error)
        if answer.error is not None:
            logger.warning(
                "health check %s (%s) is inconclusive: %s",
                evaluation.check.name,
                evaluation.scope,
                answer.error,
            )
        return GateSample(evaluation.check.name, self.clock.now(), outcome, value, detail)


def _any_promotion_checks(service: FleetService) -> bool:
    return any(
        stream.promotion is not None and stream.promotion.health_checks
        for stream in service.fleet.streams.values()
    )
