"""The FleetLock protocol (Zincati's reboot coordination): `POST v1/pre-reboot` takes a
reboot lock, `POST v1/steady-state` gives it back.

Clients identify themselves only by the `fleet-lock-protocol: true` header and
`client_params.id` (Zincati: its app-specific node UUID) and send no credentials, so the id
is mapped to an inventory host (`fleetLockId`), and the operator may require a secret in the
base URL's path (`/fleetlock/<secret>/`), compared by its sha256. Every answer other than
`200` carries the protocol's error body, `{"kind": ..., "value": ...}`, with one of
:data:`ERROR_KINDS`. Whether a lock is granted is decided by a pass of the host's group
(:meth:`FleetService.pre_reboot`), by the same rules and budget as the agent's reboots.
"""

from __future__ import annotations

import hmac
import json
import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from reconciler.errors import NotHeld
from reconciler.serve.api.forward import forwarded
from reconciler.serve.api.peers import PeerClient
from reconciler.serve.service import FleetService, LockAnswer, token_hash

logger = logging.getLogger(__name__)

#: A FleetLock body is a few hundred bytes; anything much larger is not one.
MAX_BODY_BYTES = 16 * 1024

#: The error kinds a client may see, and the status each comes with.
ERROR_KINDS: dict[str, int] = {
    "missing_header": 400,  # no `fleet-lock-protocol: true`
    "bad_request": 400,  # not JSON, or no `client_params.id` / `group` strings
    "wrong_secret": 403,  # the base URL's secret is missing or wrong
    "unknown_client": 403,  # no inventory host has this `fleetLockId`
    "lock_refused": 409,  # the rules or the budget do not allow a reboot now
    "unavailable": 503,  # the host's group could not be planned; try again
}


@dataclass(frozen=True)
class FleetLockSettings:
    """FleetLock is served when enabled; with ``secret_sha256``, only under
    `/fleetlock/<secret>/v1/...`, whose secret must hash to it."""

    secret_sha256: str | None = None


def error(kind: str, value: str) -> JSONResponse:
    """The protocol's error answer."""
    return JSONResponse({"kind": kind, "value": value}, status_code=ERROR_KINDS[kind])


def add_fleetlock_routes(
    app: FastAPI,
    service: FleetService,
    settings: FleetLockSettings,
    peers: PeerClient | None = None,
    replica: str = "",
) -> None:
    """Serve FleetLock on ``app`` for ``service``'s hosts (with replicas, a host whose group
    another replica holds is forwarded there through ``peers``)."""

    async def answer(request: Request, secret: str | None, acquire: bool) -> Response:
        if settings.secret_sha256 is not None and (
            secret is None or not hmac.compare_digest(token_hash(secret), settings.secret_sha256)
        ):
            return error(
                "wrong_secret",
                "this server needs its secret in the base URL, which must end with `/` "
                "(e.g. https://server/fleetlock/<secret>/), or the secret is wrong",
            )
        if request.headers.get("fleet-lock-protocol") != "true":
            return error("missing_header", "the header `fleet-lock-protocol: true` is required")
        read = await _client_id(request)
        if isinstance(read, JSONResponse):
            return read
        lock_id, body = read
        host = service.host_for_lock_id(lock_id)
        if host is None:
            # Logged, so an operator can put the id into the inventory as `fleetLockId`.
            shown = lock_id[:128]
            logger.warning("FleetLock request from unknown id %s", shown)
            return error("unknown_client", f"no host in the inventory has fleetLockId {shown}")
        group = service.fleet.group_of(host)
        if group is not None and not service.ownership.holds(group) and peers is not None:
            try:
                return await forwarded(request, body, service.ownership, group, peers, replica)
            except NotHeld as exc:
                return error("unavailable", f"{exc}; try again shortly")
        try:
            result: LockAnswer = service.pre_reboot(host) if acquire else service.steady_state(host)
        except Exception:  # logged, counted and retried by the service's reconcile()
            return error("unavailable", "the host's group could not be planned; try again later")
        if not result.granted:
            return error("lock_refused", f"{result.reason.code}: {result.reason.message}")
        return Response(status_code=200)

    def route(path: str, acquire: bool, with_secret: bool) -> None:
        if with_secret:

            async def handle_with_secret(request: Request, secret: str) -> Response:
                return await answer(request, secret, acquire)

            app.post(path, include_in_schema=False)(handle_with_secret)
        else:

            async def handle(request: Request) -> Response:
                return await answer(request, None, acquire)

            app.post(path, include_in_schema=False)(handle)

    for operation, acquire in (("pre-reboot", True), ("steady-state", False)):
        # Without a secret, `/v1/...`. With one, `/fleetlock/<secret>/v1/...`; the plain
        # paths and a base URL that lost its secret (no trailing `/`: URL joining then
        # drops the last segment) are answered with the protocol's error, not a 404.
        route(f"/v1/{operation}", acquire, with_secret=False)
        if settings.secret_sha256 is not None:
            route(f"/fleetlock/{{secret}}/v1/{operation}", acquire, with_secret=True)
            route(f"/fleetlock/v1/{operation}", acquire, with_secret=False)


async def _client_id(request: Request) -> tuple[str, bytes] | JSONResponse:
    """``client_params.id`` from the body, and the body; or the protocol's error."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            return error("bad_request", f"a FleetLock body may be at most {MAX_BODY_BYTES} bytes")
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return error("bad_request", "the body is not JSON")
    params = parsed.get("client_params") if isinstance(parsed, dict) else None
    lock_id = params.get("id") if isinstance(params, dict) else None
    group = params.get("group") if isinstance(params, dict) else None
    if not isinstance(lock_id, str) or not lock_id or not isinstance(group, str):
        return error(
            "bad_request", 'the body must be {"client_params": {"id": "...", "group": "..."}}'
        )
    return lock_id, bytes(body)
