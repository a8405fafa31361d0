"""Replicas: a request about a group another replica plans is handed to that replica.

Agents and the load balancer in front of the replicas know nothing of leases: any replica
takes any request. One that does not hold the host's group forwards the request as it came
(method, path, query, body, the agent's credentials) to the holder and relays its answer, so
a host is always answered by the one replica allowed to decide for its group. The holder
sees :data:`FORWARDED` and never forwards again: a lease that moved in between gets a 503
with ``Retry-After``, and the agent asks again, as it would after any restart.
"""

from __future__ import annotations

import asyncio

from fastapi import Request
from fastapi.responses import Response

from reconciler.errors import NotHeld
from reconciler.serve.api.peers import PeerClient, PeerUnavailable
from reconciler.serve.ownership import Ownership

#: Marks a request one replica sent to another.
FORWARDED = "x-fleet-forwarded-by"

#: Headers relayed each way; hop-by-hop and length headers are the HTTP client's business.
_REQUEST_HEADERS = ("authorization", "content-type", "accept")
_ANSWER_HEADERS = ("content-type", "retry-after")

#: Beyond a long-poll's own wait, how long the holder may take to answer.
ANSWER_MARGIN_SECONDS = 30.0


async def forwarded(
    request: Request,
    body: bytes,
    ownership: Ownership,
    group: str,
    client: PeerClient,
    replica: str,
    wait_seconds: float = 0.0,
) -> Response:
    """The holder's answer to ``request`` about ``group``; NotHeld (a 503) when no replica
    holds it now, the holder does not answer, or the request was forwarded here already."""
    if request.headers.get(FORWARDED):
        raise NotHeld(f"group {group} moved while the request was forwarded")
    base = ownership.holder_url(group)
    if base is None:  # taken since this replica's last lease round, perhaps: ask the database
        base = await asyncio.to_thread(ownership.look_up_holder, group)
    if base is None:
        raise NotHeld(f"no replica holds group {group} yet")
    url = base.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    headers = {name: value for name in _REQUEST_HEADERS if (value := request.headers.get(name))}
    headers[FORWARDED] = replica
    try:
        answer = await client.request(
            request.method, url, headers, body, timeout=wait_seconds + ANSWER_MARGIN_SECONDS
        )
    except PeerUnavailable as exc:
        raise NotHeld(f"the replica holding group {group} did not answer: {exc}") from exc
    relayed = {name: value for name in _ANSWER_HEADERS if (value := answer.headers.get(name))}
    return Response(answer.body, status_code=answer.status, headers=relayed)
