"""Which host an agent's request comes from: its bearer token, its client certificate
(mutual TLS, issued by the fleet CA), or both — the operator's choice (``AgentAuth``).

A certificate names its host in a DNS subjectAltName (or, failing that, its common name);
the TLS layer has already verified it against the fleet CA, so only the mapping to the
inventory is done here. With both, the token and the certificate must name the same host.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any

from fastapi import HTTPException, Request

from reconciler.serve.service import FleetService


class AgentAuth(StrEnum):
    TOKEN = "token"  # a bearer token whose sha256 is in the inventory (the default)
    CERTIFICATE = "certificate"  # a client certificate from the fleet CA, naming the host
    BOTH = "both"  # both, naming the same host


def agent_host(request: Request, service: FleetService, auth: AgentAuth) -> str:
    """The inventory host the request comes from, or a 401/403 that says why not."""
    by_token = by_certificate = None
    if auth in (AgentAuth.TOKEN, AgentAuth.BOTH):
        by_token = _token_host(service, request.headers.get("authorization"))
    if auth in (AgentAuth.CERTIFICATE, AgentAuth.BOTH):
        by_certificate = _certificate_host(service, _peer_certificate(request))
    if by_token is not None and by_certificate is not None and by_token != by_certificate:
        raise HTTPException(
            403, f"the token belongs to {by_token} but the certificate names {by_certificate}"
        )
    host = by_token or by_certificate
    assert host is not None  # one of the two was asked for and found, or raised
    return host


def _token_host(service: FleetService, header: str | None) -> str:
    """The host an agent's `Authorization: Bearer <token>` belongs to, or 401."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(401, "missing bearer token")
    host = service.host_for_token(token.strip())
    if host is None:
        raise HTTPException(401, "unknown token")
    return host


def _peer_certificate(request: Request) -> Mapping[str, Any] | None:
    tls = request.scope.get("extensions", {}).get("tls", {})
    certificate = tls.get("peer_cert") if isinstance(tls, dict) else None
    return certificate if isinstance(certificate, Mapping) else None


def certificate_names(certificate: Mapping[str, Any]) -> list[str]:
    """The names a verified certificate gives its holder: DNS subjectAltNames, else the
    subject's common name (Python's ``getpeercert()`` form)."""
    names = [value for kind, value in certificate.get("subjectAltName", ()) if kind == "DNS"]
    if names:
        return names
    return [
        value for rdn in certificate.get("subject", ()) for key, value in rdn if key == "commonName"
    ]


def _certificate_host(service: FleetService, certificate: Mapping[str, Any] | None) -> str:
    if certificate is None:
        raise HTTPException(401, "a client certificate from the fleet CA is required")
    known = [name for name in certificate_names(certificate) if name in service.fleet.hosts]
    if len(known) != 1:
        named = ", ".join(certificate_names(certificate)) or "no name"
        raise HTTPException(403, f"the certificate names no single inventory host ({named})")
    return known[0]
