"""The HTTP API, every route of it: `POST /v1/report` for agents, read-only status for
operators, `/metrics`, `/healthz` and `/readyz`, the forge webhook (:mod:`.webhooks`) and
the FleetLock protocol (:mod:`.fleetlock`).

Views only read the service's current plans; only a report may make the service plan.
"""

import asyncio
import hmac
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from pydantic import ValidationError

from reconciler import __version__
from reconciler.clock import Clock, wait_for_event
from reconciler.fleetrepo.healthchecks import HealthCheck
from reconciler.rollout.freezes import freeze_at
from reconciler.rollout.gates import GateVerdict
from reconciler.rollout.state import Lifecycle
from reconciler.serve.answers import Answer
from reconciler.serve.api import problems
from reconciler.serve.api.fleetlock import FleetLockSettings, add_fleetlock_routes
from reconciler.serve.api.forward import forwarded
from reconciler.serve.api.identity import AgentAuth, agent_host
from reconciler.serve.api.limits import ReportBodyLimits
from reconciler.serve.api.peers import PeerClient
from reconciler.serve.api.revision import add_revision_route
from reconciler.serve.api.webhooks import add_webhook_route
from reconciler.serve.metrics import export_fleet_state, exposition
from reconciler.serve.revisions import FetchHealth
from reconciler.serve.schemas import (
    AgentReport,
    Assignment,
    GroupOut,
    HealthCheckOut,
    HostOut,
    LockOut,
    PromotionOut,
    ReasonOut,
    RebootDeferred,
    TargetOut,
)
from reconciler.serve.service import FleetService, token_hash

MAX_WAIT_SECONDS = 300
_bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


@dataclass(frozen=True)
class Webhook:
    """`POST /v1/webhook` is served when a secret is configured; ``on_accepted`` is called for
    each request that carries a valid signature."""

    secret: str
    on_accepted: Callable[[], None]
    branch: str | None = None  # a signed push to another branch is acknowledged and ignored


def create_app(
    service: FleetService,
    registry: CollectorRegistry,
    operator_token_sha256: str | None = None,
    webhook: Webhook | None = None,
    metrics_token_sha256: str | None = None,
    agent_auth: AgentAuth = AgentAuth.TOKEN,
    fleetlock: FleetLockSettings | None = None,
    fetch_health: Callable[[], FetchHealth] | None = None,
    replica: str = "",
) -> FastAPI:
    """The API over ``service``, exporting ``registry`` (with the fleet-state metrics added)
    on `/metrics`. Operators authenticate with a token whose sha256 is given; so does a
    Prometheus scraper when ``metrics_token_sha256`` is set."""
    app = FastAPI(
        title="ostree-fleet reconciler",
        version=__version__,
        description="Agent reports and assignments; operator status.",
        # Swagger UI and ReDoc load scripts from a CDN: not on a server that hosts trust.
        # The OpenAPI document itself stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.add_middleware(ReportBodyLimits)
    problems.install(app)
    export_fleet_state(service, registry)
    reports_counter = service.metrics.agent_reports
    long_polls = app.state.long_polls = LongPolls()
    service.plan_listeners.append(long_polls.plan_changed)
    # Replicas: requests about groups another replica holds go there (serve/api/forward.py).
    peers = PeerClient()
    app.router.on_shutdown.append(peers.aclose)

    async def operator(credentials: Credentials) -> None:
        if credentials is None:
            raise HTTPException(401, "missing bearer token")
        if operator_token_sha256 is None or not hmac.compare_digest(
            token_hash(credentials.credentials), operator_token_sha256
        ):
            raise HTTPException(401, "not an operator token")

    @app.post(
        "/v1/report",
        response_model=Assignment,
        responses={401: {}, 403: {}, 413: {}, 415: {}, 422: {}},
        openapi_extra=_REPORT_OPENAPI,
    )
    async def report(request: Request) -> Response:
        """Report the host's state; the answer is its assignment.

        The body, token and `wait` are read here rather than through FastAPI's dependency
        machinery: it is the hot path (thousands of reports a second), and pydantic's JSON
        parser on the raw bytes is several times cheaper. The OpenAPI document still
        describes all of it (`_REPORT_OPENAPI`).
        """
        try:
            host = agent_host(request, service, agent_auth)
            wait = _wait_seconds(request.query_params.get("wait"))
            raw = await request.body()
            group = service.fleet.group_of(host)
            if group is not None and not service.ownership.holds(group):
                reports_counter.labels("forwarded").inc()
                return await forwarded(request, raw, service.ownership, group, peers, replica, wait)
            try:
                body = AgentReport.model_validate_json(raw)
            except ValidationError as exc:
                raise RequestValidationError(
                    [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]
                ) from None
            if body.host is not None and body.host != host:
                raise HTTPException(403, f"this token belongs to {host}, not {body.host}")
        except HTTPException as exc:
            reports_counter.labels(_REPORT_RESULTS.get(exc.status_code, "rejected")).inc()
            raise
        except RequestValidationError:
            reports_counter.labels("invalid").inc()
            raise
        reports_counter.labels("ok").inc()
        # A report that changed something waits here for a (coalesced) pass of its group.
        answer = await service.report(host, body, raw.decode())
        if wait and answer.assignment_id == body.known_assignment:
            answer = await _hold_until_changed(service, long_polls, host, answer, wait)
        return Response(answer.body, media_type="application/json")

    _add_report_schemas(app)

    _add_operator_views(app, service, operator)
    add_revision_route(app, service.store, operator, fetch_health)
    _add_metrics(app, registry, metrics_token_sha256)

    if webhook is not None:
        add_webhook_route(app, webhook.secret, webhook.on_accepted, service.metrics, webhook.branch)
    if fleetlock is not None:
        add_fleetlock_routes(app, service, fleetlock, peers, replica)
    _add_health(app, service, operator_token_sha256)
    return app


def _token_matches(credentials: HTTPAuthorizationCredentials | None, sha256: str | None) -> bool:
    return (
        credentials is not None
        and sha256 is not None
        and hmac.compare_digest(token_hash(credentials.credentials), sha256)
    )


def _add_health(app: FastAPI, service: FleetService, operator_token_sha256: str | None) -> None:
    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz(credentials: Credentials) -> JSONResponse:
        """Ready, and the revision in force. With the operator token, also the verdict on the
        newest revision, whose message may quote fleet-repo content."""
        body: dict[str, Any] = {"status": "ready", "revision": service.fleet.revision}
        if _token_matches(credentials, operator_token_sha256):
            last = service.store.last_verdict()
            body["lastVerdict"] = (
                None
                if last is None
                else {
                    "revision": last.revision,
                    "accepted": last.accepted,
                    "code": last.code,
                    "message": last.message,
                }
            )
        return JSONResponse(body)


def _host_out(service: FleetService, name: str) -> HostOut:
    host = service.fleet.hosts[name]
    group = service.fleet.group_of(name)
    observed = service.view_observation(name)
    current = service.view_plan(group) if group else None
    plan = current.hosts.get(name) if current else None
    lock = service.engine.state(group).locks.get(name) if group else None
    deferred = observed.reboot_deferred if observed else None
    return HostOut(
        name=name,
        group=group,
        labels=dict(host.labels),
        last_report_at=observed.received_at if observed else None,
        booted_commit=observed.booted_commit if observed else None,
        booted_version=observed.booted_version if observed else None,
        staged_commit=observed.staged_commit if observed else None,
        greenboot=observed.greenboot.value if observed else None,
        state=plan.state.value if plan else None,
        action=plan.action.value if plan else None,
        reason=ReasonOut(code=plan.reason.code, message=plan.reason.message) if plan else None,
        lock_granted_at=lock.granted_at if lock else None,
        reboot_deferred=RebootDeferred(
            since=deferred.since,
            message=deferred.message,
            exit_code=deferred.exit_code,
            timed_out=deferred.timed_out,
        )
        if deferred is not None
        else None,
    )


def _group_out(service: FleetService, name: str) -> GroupOut | None:
    plan = service.view_plan(name)
    if plan is None:  # never planned successfully under this revision: nothing true to say
        return None
    target = plan.spec.target
    rollout = plan.state.rollout
    halt = rollout.halt if rollout is not None and rollout.lifecycle is Lifecycle.HALTED else None
    by_state: dict[str, int] = {}
    for host_plan in plan.hosts.values():
        by_state[host_plan.state.value] = by_state.get(host_plan.state.value, 0) + 1
    freeze = freeze_at(plan.spec.freezes, service.clock.now())
    return GroupOut(
        name=name,
        target=TargetOut(
            commit=target.commit, remote=target.remote, ref=target.ref, version=target.version
        ),
        phase=plan.status.phase.value,
        reason=ReasonOut(code=plan.status.reason.code, message=plan.status.reason.message),
        wave=plan.status.wave,
        waves_total=plan.status.waves_total,
        hosts=len(plan.hosts),
        hosts_by_state=by_state,
        completed_commits=sorted(plan.state.completed_commits),
        halt_resume_token=halt.resume_token if halt else None,
        freeze=freeze.describe() if freeze.active or freeze.upcoming else None,
        health_checks=_health_checks_out(
            plan.gate.verdicts if plan.gate is not None else (), plan.spec.health_checks
        ),
    )


def _health_checks_out(
    verdicts: Iterable[GateVerdict], checks: Iterable[HealthCheck]
) -> list[HealthCheckOut]:
    """The gates' verdicts, with what each check needs to pass (from the checks in force)."""
    needed = {check.name: check.consecutive_successes for check in checks}
    return [
        HealthCheckOut(
            name=verdict.check,
            status=verdict.status.value,
            dry_run=verdict.dry_run,
            failures=verdict.failures,
            consecutive_successes=verdict.consecutive_successes,
            consecutive_successes_needed=needed[verdict.check],
            last_value=verdict.last.value if verdict.last is not None else None,
            last_at=verdict.last.at if verdict.last is not None else None,
            last_outcome=verdict.last.outcome.value if verdict.last is not None else None,
            reason=verdict.reason,
        )
        for verdict in verdicts
    ]


def _add_operator_views(
    app: FastAPI, service: FleetService, operator: Callable[..., Awaitable[None]]
) -> None:
    """Read-only views for operators: hosts, groups, promotions."""

    @app.get("/v1/hosts", response_model=list[HostOut], dependencies=[Depends(operator)])
    async def hosts() -> list[HostOut]:
        """Every host of the inventory with its last report and its plan."""
        await service.refresh_views()
        return [_host_out(service, name) for name in service.fleet.hosts]

    @app.get(
        "/v1/hosts/{name}",
        response_model=HostOut,
        dependencies=[Depends(operator)],
        responses={404: {}},
    )
    async def one_host(name: str) -> HostOut:
        if name not in service.fleet.hosts:
            raise HTTPException(404, f"no host {name} in the inventory")
        await service.refresh_views()
        return _host_out(service, name)

    @app.get("/v1/groups", response_model=list[GroupOut], dependencies=[Depends(operator)])
    async def groups() -> list[GroupOut]:
        """Every group with its rollout status."""
        await service.refresh_views()
        views = (_group_out(service, name) for name in service.fleet.groups)
        return [view for view in views if view is not None]

    @app.get("/v1/locks", response_model=list[LockOut], dependencies=[Depends(operator)])
    async def locks() -> list[LockOut]:
        """Every FleetLock reboot lock held now: by whom, since when, and whether stale."""
        now = service.clock.now()
        return [
            LockOut(
                group=held.group,
                host=held.host,
                granted_at=held.granted_at,
                age_seconds=max(0.0, (now - held.granted_at).total_seconds()),
                stale=held.stale,
            )
            for held in service.held_locks()
        ]

    @app.get("/v1/promotions", response_model=list[PromotionOut], dependencies=[Depends(operator)])
    async def promotions() -> list[PromotionOut]:
        """Every stream that declares promotion, and where its promotion stands."""
        return [
            PromotionOut(
                stream=c.stream,
                source=c.source,
                commit=c.commit,
                version=c.version,
                state=c.status.value,
                message=c.message,
                healthy_hosts=list(c.healthy_hosts),
                soaked_seconds=max(0.0, c.soaked_for.total_seconds()),
                due_at=c.due_at,
                source_revision=c.source_revision,
                health_checks=_health_checks_out(
                    c.gates, c.policy.health_checks if c.policy is not None else ()
                ),
            )
            for c in service.promotion_checks()
        ]


def _add_metrics(app: FastAPI, registry: CollectorRegistry, token_sha256: str | None) -> None:
    @app.get("/metrics", include_in_schema=False)
    async def metrics(credentials: Credentials) -> Response:
        """Prometheus metrics (docs/metrics.md); a bearer token when one is configured."""
        if token_sha256 is not None and not _token_matches(credentials, token_sha256):
            raise HTTPException(401, "metrics need the scrape token")
        return Response(exposition(registry), media_type=CONTENT_TYPE_LATEST)


def _wait_seconds(raw: str | None) -> int:
    """The `wait` query parameter: whole seconds, 0 to MAX_WAIT_SECONDS; else a 422."""
    if raw is None:
        return 0
    # isascii: str.isdigit() also accepts "²", which int() refuses.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 3) or int(raw) > MAX_WAIT_SECONDS:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", "wait"),
                    "type": "int_range",
                    "msg": f"wait must be a whole number of seconds from 0 to {MAX_WAIT_SECONDS}",
                    "input": raw,
                }
            ]
        )
    return int(raw)


_REPORT_RESULTS = {401: "unauthorized", 403: "forbidden"}

_REPORT_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AgentReport"}}},
    },
    "parameters": [
        {
            "name": "wait",
            "in": "query",
            "required": False,
            "description": "Hold the answer up to this many seconds until the assignment changes.",
            "schema": {"type": "integer", "minimum": 0, "maximum": MAX_WAIT_SECONDS, "default": 0},
        }
    ],
    "security": [{"HTTPBearer": []}],
}


def let_long_polls_go(app: FastAPI) -> None:
    """Answer every long-poll ``app`` holds, and hold no new one: its server is stopping."""
    long_polls: LongPolls | None = getattr(app.state, "long_polls", None)
    if long_polls is not None:  # an app not made by create_app holds none
        long_polls.let_go()


def _add_report_schemas(app: FastAPI) -> None:
    """Put AgentReport (and the models it uses) into the OpenAPI components."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schema = AgentReport.model_json_schema(
                by_alias=True, ref_template="#/components/schemas/{model}"
            )
            components = document.setdefault("components", {}).setdefault("schemas", {})
            components.update(schema.pop("$defs", {}))
            components["AgentReport"] = schema
            app.openapi_schema = document
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


@dataclass(eq=False)
class _Hold:
    """One held long-poll: ``wake`` is set when its group's plan changes or a newer long-poll
    from the same host takes its place (``superseded``)."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)
    superseded: bool = False


class LongPolls:
    """The long-polls being held: at most one per host, so a host (or whoever has its token)
    holds one connection, not a thousand. A new long-poll ends the host's previous one, which
    answers at once with the current assignment. When the server stops, every long-poll
    answers at once (:meth:`let_go`) and none is held any more."""

    def __init__(self) -> None:
        self._by_host: dict[str, _Hold] = {}
        self._by_group: dict[str, set[_Hold]] = {}
        self.stopping = False

    def let_go(self) -> None:
        """The server is stopping: answer every held long-poll now, and hold no new one.

        A long-poll may be held for minutes; left alone, it would keep the server from
        stopping until it was cut off (a 500, and a traceback in the log). Answered now, the
        agent gets its current assignment and reports again to whoever serves next."""
        self.stopping = True
        for hold in self._by_host.values():
            hold.wake.set()

    def plan_changed(self, group: str, _: object) -> None:
        """A plan listener: wake every long-poll of ``group``."""
        for hold in self._by_group.pop(group, ()):
            hold.wake.set()

    @contextmanager
    def hold(self, host: str) -> Iterator[_Hold]:
        """Hold ``host``'s long-poll, ending the one it held before."""
        previous = self._by_host.get(host)
        if previous is not None:
            previous.superseded = True
            previous.wake.set()
        self._by_host[host] = mine = _Hold()
        try:
            yield mine
        finally:
            if self._by_host.get(host) is mine:
                del self._by_host[host]

    async def wait(self, clock: Clock, hold: _Hold, group: str | None, until: datetime) -> None:
        """Wait until ``group``'s plan changes (never, for no group), ``hold`` is superseded,
        the server stops, or the clock reaches ``until``."""
        if not (hold.superseded or self.stopping):
            hold.wake.clear()  # woken before, by a plan change already acted on
        waiting = self._by_group.setdefault(group, set()) if group is not None else set()
        waiting.add(hold)
        try:
            await wait_for_event(clock, hold.wake, until)
        finally:
            waiting.discard(hold)


async def _hold_until_changed(
    service: FleetService,
    long_polls: LongPolls,
    host: str,
    assignment: Answer,
    wait: int,
) -> Answer:
    """Long-poll: answer when the host's assignment changes, its plan's next look is due (a
    soak ending, a window opening), ``wait`` seconds have passed (all on the service's clock),
    the host long-polls again, or the server stops."""
    clock = service.clock
    deadline = clock.now() + timedelta(seconds=wait)
    known = assignment.assignment_id
    with long_polls.hold(host) as hold:
        while (
            assignment.assignment_id == known
            and clock.now() < deadline
            and not (hold.superseded or long_polls.stopping)
        ):
            group = assignment.group
            if group is None:  # unmanaged: nothing changes until Git does; hold the line
                await long_polls.wait(clock, hold, None, deadline)
                return await service.answer(host)
            plan = service.current_plan(group)
            look_again = plan.requeue_at if plan is not None else None
            until = deadline if look_again is None else min(deadline, look_again)
            if until <= clock.now():
                # A look-again already due: the answer below waits for a queued pass; yield
                # briefly too so a plan that keeps asking for "now" cannot spin the loop.
                await asyncio.sleep(0.01)
            else:
                await long_polls.wait(clock, hold, group, until)
            assignment = await service.answer(host)
    return assignment
