"""What a running reconciler observes, as `reconciler plan --against` reads it.

:class:`LiveState` is plain data for the pure review; :func:`fetch_live_state` is the adapter
that asks the server (`GET /v1/groups`, `GET /v1/hosts` with the operator token) and
translates every network and format failure into :class:`LiveStateUnavailable`.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from reconciler.errors import LiveStateUnavailable
from reconciler.serve.schemas import GroupOut, HostOut


@dataclass(frozen=True)
class LiveGroup:
    """One group as the server plans it now."""

    name: str
    commit: str
    version: str | None
    phase: str  # a GroupPhase value: in_sync, progressing, halted, ...
    reason_code: str
    reason: str
    waves_opened: int
    completed_commits: frozenset[str]
    halt_resume_token: str | None = None


@dataclass(frozen=True)
class LiveHost:
    name: str
    group: str | None
    booted_commit: str | None
    state: str | None


@dataclass(frozen=True)
class LiveState:
    """The groups and hosts of one running reconciler, by name."""

    server: str
    groups: Mapping[str, LiveGroup]
    hosts: Mapping[str, LiveHost]


def parse_live_state(server: str, groups: Any, hosts: Any) -> LiveState:
    """A :class:`LiveState` from the JSON of `/v1/groups` and `/v1/hosts`."""
    try:
        group_models = [GroupOut.model_validate(g) for g in groups]
        host_models = [HostOut.model_validate(h) for h in hosts]
    except (ValidationError, TypeError) as exc:
        raise LiveStateUnavailable(f"{server} sent an unexpected answer: {exc}") from exc
    return LiveState(
        server=server,
        groups={
            g.name: LiveGroup(
                name=g.name,
                commit=g.target.commit,
                version=g.target.version,
                phase=g.phase,
                reason_code=g.reason.code,
                reason=g.reason.message,
                waves_opened=g.wave,
                completed_commits=frozenset(g.completed_commits),
                halt_resume_token=g.halt_resume_token,
            )
            for g in group_models
        },
        hosts={h.name: LiveHost(h.name, h.group, h.booted_commit, h.state) for h in host_models},
    )


def fetch_live_state(server: str, token: str | None, timeout: float = 30.0) -> LiveState:
    """Ask the reconciler at ``server`` for its groups and hosts with the operator ``token``."""
    return parse_live_state(
        server,
        get_json(server, "/v1/groups", token, timeout),
        get_json(server, "/v1/hosts", token, timeout),
    )


def get_json(server: str, path: str, token: str | None, timeout: float = 30.0) -> Any:
    """``GET path`` on a running reconciler with the operator ``token``; the JSON answer."""
    request = urllib.request.Request(
        server.rstrip("/") + path,
        headers={"Authorization": f"Bearer {token or ''}", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")[:300]
        raise LiveStateUnavailable(
            f"{server} answered {exc.code} to {path}: {body}", refused=exc.code in (401, 403)
        ) from exc
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
        # ValueError: a malformed URL, or an answer that is not JSON.
        raise LiveStateUnavailable(f"cannot reach {server}: {exc}") from exc
