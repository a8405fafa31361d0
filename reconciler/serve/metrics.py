"""Prometheus metrics: a public interface (alert rules and dashboards depend on the names).

Fleet state (drift, hosts by state, waves, rollout state, last reports) is computed at scrape
time from the service's current plans and observations, so it is always level-true and needs
no bookkeeping. Counters of things that happened (failures, finished rollouts) are read from
the durable event log, so they survive restarts. Only the reconciler's own operational
counters (reports, webhooks, fetch errors, reconcile durations) live in process memory.
Names and meanings: docs/metrics.md.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast
from weakref import WeakKeyDictionary

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from reconciler.fleetrepo.fleet import Fleet
from reconciler.promotion.check import PromotionCheck, PromotionStatus
from reconciler.rollout.decisions import DecisionKind, RolloutResult, rollout_results
from reconciler.rollout.gates import GateVerdict
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
        self.gate_evaluations = Counter(
            "fleet_health_check_evaluations",
            "Health-check evaluations against Prometheus, by scope (group/<name> or "
            "stream/<name>/<source commit>), check and outcome (success, failure, neutral, "
            "inconclusive).",
            ["scope", "check", "outcome"],
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

    def exports(self, group: str | None) -> bool:
        """Whether the per-host series of ``group``'s hosts (None: hosts in no group) are
        this process's to export: with replicas, only the groups it plans."""
        ...


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
        yield from self._groups()
        yield from self._locks()
        yield from self._from_event_log()
        yield from self._revision()
        yield from self._promotions()
        yield from self._gates()

    def _groups(self) -> Iterator[GaugeMetricFamily]:
        service = self.service
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
        for group in sorted(service.fleet.groups):
            # Read-only: a scrape shows the plans as they are and never plans (that would
            # persist decisions, and a failing group would fail the whole scrape). A group is
            # planned at start, on reports, on its look-again timer and every resync.
            plan = service.plans.get(group)
            if plan is None:
                continue
            counts = {s.value: 0 for s in HostState}
            for host_plan in plan.hosts.values():
                counts[host_plan.state.value] += 1
            for name, count in counts.items():
                hosts.add_metric([group, name], float(count))
            wave.add_metric([group], float(min(plan.status.wave, plan.status.waves_total)))
            waves.add_metric([group], float(plan.status.waves_total))
            current = plan.status.phase.value
            for name in ROLLOUT_STATES:
                state.add_metric([group, name], 1.0 if name == current else 0.0)
        yield from (hosts, wave, waves, state)

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

    def _gates(self) -> Iterator[GaugeMetricFamily]:
        status = GaugeMetricFamily(
            "fleet_health_gate_status",
            "1 for the current status (pending, passed, failed, stalled) of each health gate: "
            "a soaking wave's (scope group/<name>) or a promotion's (scope stream/<name>).",
            labels=["scope", "check", "status"],
        )
        value = GaugeMetricFamily(
            "fleet_health_gate_value",
            "The value of the health check's last evaluation that had one.",
            labels=["scope", "check"],
        )
        for scope, verdicts in self._gate_verdicts():
            for verdict in verdicts:
                # Only the status it has: a gate exists only while its wave soaks or its
                # promotion waits, so zeros for the other statuses would come and go anyway.
                status.add_metric([scope, verdict.check, verdict.status.value], 1.0)
                last = verdict.last
                if last is not None and last.value is not None:
                    value.add_metric([scope, verdict.check], last.value)
        yield from (status, value)

    def _gate_verdicts(self) -> Iterator[tuple[str, tuple[GateVerdict, ...]]]:
        """Each scope's gates: the soaking wave's of each group, then each promotion's."""
        plans = self.service.plans
        for group in sorted(self.service.fleet.groups):
            plan = plans.get(group)
            if plan is not None and plan.gate is not None:
                yield f"group/{group}", plan.gate.verdicts
        for check in self.service.promotion_checks():
            if check.gates:
                yield f"stream/{check.stream}", check.gates

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


# -- per-host series ------------------------------------------------------------------------

#: A sample value as prometheus_client writes it (Go's exponent rules): same text, same series.
_go_float = cast(Callable[[float], str], floatToGoString)


def _family(name: str, kind: str, help_text: str) -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n"


_DRIFT = _family(
    "fleet_host_drift",
    "gauge",
    "1 when the host's booted base commit differs from its group's desired commit.",
)
_SINCE = _family(
    "fleet_host_drift_since_timestamp_seconds",
    "gauge",
    "Since when the host has been drifted: when its group's desired commit changed, or when "
    "it left it (Unix time).",
)
_REPORTED = _family(
    "fleet_host_last_report_timestamp_seconds", "gauge", "When the host last reported (Unix time)."
)
_BOOTED = _family(
    "fleet_host_booted_info",
    "gauge",
    "The booted deployment the host last reported: base commit and version.",
)


@dataclass(slots=True)
class _GroupLines:
    """A group's drift and booted-deployment lines, valid while its plan is the one they were
    built from and none of its hosts booted another deployment since."""

    plan: GroupPlan | None
    drift: str
    since: str
    info: str


@dataclass(frozen=True, slots=True)
class _LastReport:
    """What a host's last-report sample was written from, and its value as text. Not the
    observation itself: holding on to it would keep a replaced one alive per host."""

    received_at: datetime
    booted_commit: str | None
    booted_version: str | None
    stamp: str

    def describes(self, observation: HostObservation) -> bool:
        return (
            self.received_at == observation.received_at
            and self.booted_commit == observation.booted_commit
            and self.booted_version == observation.booted_version
        )


class HostSeries:
    """The four per-host families, written as Prometheus text directly.

    prometheus_client builds an object per sample and formats it generically: 2.3 s for the
    300,000 series of 100,000 hosts. Here each group's drift and booted-deployment lines are
    kept, and rebuilt only when its plan is replaced or one of its hosts reports another
    booted deployment; a host's last-report value is formatted again only when it reported
    since the last scrape. What changed is found by comparing at each scrape, so the page
    stays level-true without any notification. ``enabled`` False leaves the per-host series out
    (``--no-metrics-per-host``): group series only.
    """

    def __init__(self, view: FleetView, enabled: bool = True) -> None:
        self.view, self.enabled = view, enabled
        self._fleet: Fleet | None = None
        self._groups: dict[str, _GroupLines] = {}
        self._hosts: dict[str, _LastReport] = {}
        self._ungrouped: tuple[str, ...] = ()

    def render(self) -> bytes:
        """The per-host families in Prometheus text format (empty when disabled)."""
        if not self.enabled:
            self._fleet, self._groups, self._hosts = None, {}, {}
            return b""
        fleet = self.view.fleet
        if fleet is not self._fleet:
            self._fleet, self._groups, self._hosts = fleet, {}, {}
            self._ungrouped = tuple(h for h in fleet.hosts if fleet.group_of(h) is None)
        reported, rebooted = self._last_reports()
        drift, since, info = [_DRIFT], [_SINCE], [_BOOTED]
        for group in sorted(fleet.groups):
            if not self.view.exports(group):
                continue
            lines = self._group_lines(group, group in rebooted)
            drift.append(lines.drift)
            since.append(lines.since)
            info.append(lines.info)
        if self.view.exports(None):
            info.append(self._group_lines("", "" in rebooted).info)
        return "".join([*drift, *since, _REPORTED, *reported, *info]).encode()

    def _last_reports(self) -> tuple[list[str], set[str]]:
        """Every host's last-report line, and the groups ("" for none) of the hosts whose
        booted deployment changed since the last scrape."""
        fleet, known = self.view.fleet, self._hosts
        lines, rebooted = [], set()
        for host, observation in self.view.observed.items():
            if host not in fleet.hosts:
                continue  # not in the inventory in force
            if not self.view.exports(fleet.group_of(host)):
                continue  # another replica plans its group and exports its series
            seen = known.get(host)
            if seen is None or not seen.describes(observation):
                if self._groups and (
                    seen is None
                    or seen.booted_commit != observation.booted_commit
                    or seen.booted_version != observation.booted_version
                ):  # (no group lines kept yet: every group's are written anyway)
                    rebooted.add(fleet.group_of(host) or "")
                at = observation.received_at
                stamp = _go_float(at.timestamp())
                seen = known[host] = _LastReport(
                    at, observation.booted_commit, observation.booted_version, stamp
                )
            series = f"{{{_host_label(host)}}}"
            lines.append(f"fleet_host_last_report_timestamp_seconds{series} {seen.stamp}\n")
        return lines, rebooted

    def _group_lines(self, group: str, rebooted: bool) -> _GroupLines:
        plan = self.view.plans.get(group) if group else None
        cached = self._groups.get(group)
        if cached is not None and cached.plan is plan and not rebooted:
            return cached
        observed = self.view.observed
        # Never planned yet (or no group): no drift series, booted info all the same.
        drift, since = self._drift(group, plan, observed) if plan is not None else ("", "")
        members = self.view.fleet.members.get(group, ()) if group else self._ungrouped
        info = self._info(group, members, observed)
        lines = self._groups[group] = _GroupLines(plan, drift, since, info)
        return lines

    def _drift(
        self, group: str, plan: GroupPlan, observed: Mapping[str, HostObservation]
    ) -> tuple[str, str]:
        target, rollout = plan.spec.target.commit, plan.state.rollout
        group_label = f'group="{_escape(group)}"'
        drift, since = [], []
        for host in plan.hosts:
            series = f"{{{group_label},{_host_label(host)}}}"
            observation = observed.get(host)
            drifted = observation is None or observation.booted_commit != target
            drift.append(f"fleet_host_drift{series} {'1.0' if drifted else '0.0'}\n")
            progress = rollout.hosts.get(host) if rollout is not None else None
            if drifted and progress is not None and progress.offered_at is not None:
                # Drift that a rollout does not explain starts when the host was offered
                # the target (its wave opened, it joined, or it was brought back after
                # leaving); a host still waiting for its wave is not counted as drifting.
                stamp = _go_float(progress.offered_at.timestamp())
                since.append(f"fleet_host_drift_since_timestamp_seconds{series} {stamp}\n")
        return "".join(drift), "".join(since)

    def _info(
        self, group: str, hosts: Iterable[str], observed: Mapping[str, HostObservation]
    ) -> str:
        """What each host runs, by commit and version, for dashboards that group hosts by
        version; from the hosts' last reports, so a host that boots another version has its
        new series only: none is left behind."""
        group_label = f'group="{_escape(group)}"'
        lines = []
        for host in hosts:
            observation = observed.get(host)
            if observation is None or observation.booted_commit is None:
                continue  # reported no booted deployment, or never reported
            commit = _escape(observation.booted_commit)
            version = _escape(observation.booted_version or "")
            host_label = _host_label(host)
            lines.append(
                f'fleet_host_booted_info{{commit="{commit}",{group_label},{host_label},'
                f'version="{version}"}} 1.0\n'
            )
        return "".join(lines)


def _escape(value: str) -> str:
    """A label value as the text format writes it (as prometheus_client does)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return value


def _host_label(host: str) -> str:
    return f'host="{_escape(host)}"'


#: The per-host series exported with each registry (see :func:`exposition`).
_HOST_SERIES: WeakKeyDictionary[CollectorRegistry, HostSeries] = WeakKeyDictionary()


def export_fleet_state(view: FleetView, registry: CollectorRegistry) -> HostSeries:
    """Compute the fleet-state metrics from ``view`` at each scrape of ``registry``: group
    series through the registry, per-host series through :func:`exposition`."""
    registry.register(FleetCollector(view))
    series = _HOST_SERIES[registry] = HostSeries(view)
    return series


def host_series(registry: CollectorRegistry) -> HostSeries | None:
    """The per-host series exported with ``registry`` (to switch them off), if any."""
    return _HOST_SERIES.get(registry)


def exposition(registry: CollectorRegistry) -> bytes:
    """The `/metrics` page: ``registry`` in Prometheus text format, and the fleet's per-host
    series when :func:`export_fleet_state` added them."""
    page = generate_latest(registry)
    series = _HOST_SERIES.get(registry)
    return page if series is None else page + series.render()
