"""Prometheus metrics: a public interface (alert rules and dashboards depend on the names).

Fleet state (drift, hosts by state, waves, rollout state, last reports) is computed at scrape
time from the service's current plans and observations, so it is always level-true and needs
no bookkeeping. Counters of things that happened (failures, finished rollouts) are read from
the durable event log, so they survive restarts. Only the reconciler's own operational
counters (reports, webhooks, fetch errors, reconcile durations) live in process memory.
Names and meanings: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector

from reconciler.fleetrepo.fleet import Fleet
from reconciler.promotion.check import PromotionCheck, PromotionStatus
from reconciler.rollout.decisions import DecisionKind, RolloutResult, rollout_results
from reconciler.rollout.observed import HostObservation
from reconciler.rollout.planner import GroupPhase, GroupPlan, HostState
from reconciler.rollout.reasons import FAILURE_CODES
from reconciler.state.store import RevisionRecord

FAILURE_REASONS = tuple(sorted(code.value for code in FAILURE_CODES))

#: A group's states as dashboards and alerts see them: the API's phases, word for word.
ROLLOUT_STATES = tuple(phase.value for phase in GroupPhase)


class OperationalMetrics:
    """Counters and histograms the runner updates as things happen.

    They always exist, so whoever holds them counts without asking; ``registry`` is where
    they are exported (None: counted but not exported, as prometheus_client's own
    ``registry=None``).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.reconcile_seconds = Histogram(
            "fleet_reconcile_duration_seconds",
            "Time taken by one planning pass of one group.",
            ["group"],
            registry=registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
        )
        self.reconcile_errors = Counter(
            "fleet_reconcile_errors", "Planning passes that failed.", ["group"], registry=registry
        )
        self.last_reconcile = Gauge(
            "fleet_last_successful_reconcile_timestamp_seconds",
            "When a planning pass last succeeded (Unix time).",
            registry=registry,
        )
        self.git_fetch_errors = Counter(
            "fleet_git_fetch_errors", "Fetches of the fleet repo that failed.", registry=registry
        )
        self.git_push_errors = Counter(
            "fleet_git_push_errors",
            "Pushes to the fleet repo that failed, by what was pushed (notes, promotion).",
            ["what"],
            registry=registry,
        )
        self.webhook_requests = Counter(
            "fleet_webhook_requests", "Webhook requests by result.", ["result"], registry=registry
        )
        self.agent_reports = Counter(
            "fleet_agent_reports",
            "Agent reports by result (ok, unauthorized, forbidden, invalid).",
            ["result"],
            registry=registry,
        )


class EventLog(Protocol):
    """The durable event log, as far as counters that survive restarts need it."""

    def count_events(self, kind: str) -> list[tuple[str, str, int]]: ...

    def lifecycle_events(self) -> list[tuple[str, int, DecisionKind]]: ...

    def last_verdict(self) -> RevisionRecord | None: ...


class FleetView(Protocol):
    """The read-only view of the fleet that the metrics are computed from at scrape time.

    :class:`reconciler.serve.service.FleetService` provides it; this module never imports the
    service, so the service can own its metrics without an import cycle.
    """

    @property
    def fleet(self) -> Fleet: ...

    @property
    def plans(self) -> Mapping[str, GroupPlan]: ...

    @property
    def observed(self) -> Mapping[str, HostObservation]: ...

    @property
    def store(self) -> EventLog: ...

    def promotion_checks(self) -> list[PromotionCheck]: ...

    def held_locks(self) -> Sequence[HeldLockView]: ...


class HeldLockView(Protocol):
    """A FleetLock reboot lock, as the metrics need it."""

    @property
    def group(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def granted_at(self) -> datetime: ...

    @property
    def stale(self) -> bool: ...


class FleetCollector(Collector):
    """Computes the fleet-state metrics from a view of the fleet at scrape time."""

    def __init__(self, service: FleetView) -> None:
        self.service = service

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | InfoMetricFamily]:
        service = self.service
        drift = GaugeMetricFamily(
            "fleet_host_drift",
            "1 when the host's booted base commit differs from its group's desired commit.",
            labels=["group", "host"],
        )
        since = GaugeMetricFamily(
            "fleet_host_drift_since_timestamp_seconds",
            "Since when the host has been drifted: when its group's "
            "desired commit changed, or when it left it (Unix time).",
            labels=["group", "host"],
        )
        hosts = GaugeMetricFamily(
            "fleet_group_hosts", "Hosts of a group by state.", labels=["group", "state"]
        )
        wave = GaugeMetricFamily(
            "fleet_rollout_wave", "Waves opened in the group's current rollout.", labels=["group"]
        )
        waves = GaugeMetricFamily(
            "fleet_rollout_waves", "Waves of the group's current rollout.", labels=["group"]
        )
        state = GaugeMetricFamily(
            "fleet_rollout_state",
            "1 for the group's current rollout state.",
            labels=["group", "state"],
        )
        reported = GaugeMetricFamily(
            "fleet_host_last_report_timestamp_seconds",
            "When the host last reported (Unix time).",
            labels=["host"],
        )
        for group in sorted(service.fleet.groups):
            # Read-only: a scrape shows the plans as they are and never plans (that would
            # persist decisions, and a failing group would fail the whole scrape). A group is
            # planned at start, on reports, on its look-again timer and every resync.
            plan = service.plans.get(group)
            if plan is None:
                continue
            target = plan.spec.target.commit
            rollout = plan.state.rollout
            counts = {s.value: 0 for s in HostState}
            for host, host_plan in plan.hosts.items():
                counts[host_plan.state.value] += 1
                observed = service.observed.get(host)
                drifted = observed is None or observed.booted_commit != target
                drift.add_metric([group, host], 1.0 if drifted else 0.0)
                progress = rollout.hosts.get(host) if rollout is not None else None
                if drifted and progress is not None and progress.offered_at is not None:
                    # Drift that a rollout does not explain starts when the host was offered
                    # the target (its wave opened, it joined, or it was brought back after
                    # leaving); a host still waiting for its wave is not counted as drifting.
                    since.add_metric([group, host], progress.offered_at.timestamp())
            for name, count in counts.items():
                hosts.add_metric([group, name], float(count))
            wave.add_metric([group], float(min(plan.status.wave, plan.status.waves_total)))
            waves.add_metric([group], float(plan.status.waves_total))
            current = plan.status.phase.value
            for name in ROLLOUT_STATES:
                state.add_metric([group, name], 1.0 if name == current else 0.0)
        for host, observed in sorted(service.observed.items()):
            reported.add_metric([host], observed.received_at.timestamp())
        yield from (drift, since, hosts, wave, waves, state, reported)
        yield self._booted()
        yield from self._locks()
        yield from self._from_event_log()
        yield from self._revision()
        yield from self._promotions()

    def _booted(self) -> InfoMetricFamily:
        """What each host runs, by commit and version, for dashboards that group hosts by
        version. Built afresh at each scrape from the hosts' last reports, so a host that
        boots another version has its new series only: none is left behind."""
        booted = InfoMetricFamily(
            "fleet_host_booted",
            "The booted deployment the host last reported: base commit and version.",
            labels=["group", "host", "commit", "version"],
        )
        fleet = self.service.fleet
        for host, observed in sorted(self.service.observed.items()):
            if host not in fleet.hosts or observed.booted_commit is None:
                continue  # left the inventory, or reported no booted deployment
            group = fleet.group_of(host) or ""
            labels = [group, host, observed.booted_commit, observed.booted_version or ""]
            booted.add_metric(labels, {})
        return booted

    def _locks(self) -> Iterator[GaugeMetricFamily]:
        granted = GaugeMetricFamily(
            "fleet_fleetlock_lock_granted_timestamp_seconds",
            "When the host's FleetLock client was granted the reboot lock it holds (Unix time).",
            labels=["group", "host"],
        )
        stale = GaugeMetricFamily(
            "fleet_fleetlock_stale_locks",
            "FleetLock reboot locks of the group held longer than --fleetlock-stale-after.",
            labels=["group"],
        )
        counts = dict.fromkeys(sorted(self.service.fleet.groups), 0)
        for lock in self.service.held_locks():
            granted.add_metric([lock.group, lock.host], lock.granted_at.timestamp())
            if lock.stale:
                counts[lock.group] = counts.get(lock.group, 0) + 1
        for group, count in counts.items():
            stale.add_metric([group], float(count))
        yield from (granted, stale)

    def _promotions(self) -> Iterator[GaugeMetricFamily]:
        state = GaugeMetricFamily(
            "fleet_promotion_state",
            "1 for the current state of each stream's automatic promotion.",
            labels=["stream", "source", "state"],
        )
        soaked = GaugeMetricFamily(
            "fleet_promotion_soaked_seconds",
            "How long the source commit has run on enough healthy hosts.",
            labels=["stream", "source"],
        )
        healthy = GaugeMetricFamily(
            "fleet_promotion_healthy_hosts",
            "Hosts that run the source commit and are healthy.",
            labels=["stream", "source"],
        )
        for check in self.service.promotion_checks():
            labels = [check.stream, check.source]
            for name in PromotionStatus:
                state.add_metric([*labels, name.value], 1.0 if name is check.status else 0.0)
            soaked.add_metric(labels, max(0.0, check.soaked_for.total_seconds()))
            healthy.add_metric(labels, float(len(check.healthy_hosts)))
        yield from (state, soaked, healthy)

    def _from_event_log(self) -> Iterator[CounterMetricFamily]:
        failures = CounterMetricFamily(
            "fleet_host_failures",
            "Host failures by reason (greenboot_red, fell_back, deploy_error, health_timeout, "
            "drain_timeout).",
            labels=["group", "reason"],
        )
        finished = CounterMetricFamily(
            "fleet_rollouts_finished",
            "Rollouts ended, each once, by result (completed; superseded while in progress; "
            "halted: superseded while halted).",
            labels=["group", "result"],
        )
        store, groups = self.service.store, sorted(self.service.fleet.groups)
        # Every series exists from the start at 0: `increase()` cannot see a counter's first
        # step if the series is born at 1.
        counts = {(g, reason): 0 for g in groups for reason in FAILURE_REASONS}
        for group, reason, count in store.count_events("host_failed"):
            counts[(group, reason)] = count
        for (group, reason), count in sorted(counts.items()):
            failures.add_metric([group, reason], float(count))
        # Each rollout once, by how it ended (a halt is not an end: it may be resumed).
        ended = {(g, outcome.value): 0 for g in groups for outcome in RolloutResult}
        for (group, _), outcome in rollout_results(store.lifecycle_events()).items():
            ended[(group, outcome.value)] = ended.get((group, outcome.value), 0) + 1
        for (group, label), count in sorted(ended.items()):
            finished.add_metric([group, label], float(count))
        yield failures
        yield finished

    def _revision(self) -> Iterator[GaugeMetricFamily | InfoMetricFamily]:
        info = InfoMetricFamily(
            "fleet_repo_revision", "The fleet-repo revision in force.", labels=[]
        )
        info.add_metric([], {"revision": self.service.fleet.revision or "working-tree"})
        valid = GaugeMetricFamily(
            "fleet_repo_revision_valid",
            "0 while the newest revision "
            "of the fleet repo is refused and an older one stays in "
            "force.",
        )
        last = self.service.store.last_verdict()
        valid.add_metric([], 0.0 if last is not None and not last.accepted else 1.0)
        yield info
        yield valid


def export_fleet_state(view: FleetView, registry: CollectorRegistry) -> None:
    """Compute the fleet-state metrics from ``view`` at each scrape of ``registry``."""
    registry.register(FleetCollector(view))
