"""Webhooks: `POST /v1/webhook`, authenticated for GitHub, GitLab, Gitea/Forgejo and a generic
HMAC-SHA256.

A webhook only says "look at the repo again" (level-triggered): its payload is never trusted
for what changed, so all that matters is that it really came from the forge.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from reconciler.serve.metrics import OperationalMetrics

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WebhookCheck:
    ok: bool
    provider: str
    reason: str


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def check_webhook(headers: Mapping[str, str], body: bytes, secret: str) -> WebhookCheck:
    """Whether the request carries a valid signature (or token) for ``secret``."""
    return check_webhook_digest(headers, _hmac_hex(secret, body), secret)


def check_webhook_digest(headers: Mapping[str, str], expected: str, secret: str) -> WebhookCheck:
    """Whether the request carries a valid signature (or token) for ``secret``, given the
    HMAC-SHA256 of its body (``expected``, hex), computed while the body streamed in.

    ``headers`` must be case-insensitive (Starlette's are). Checked in this order:
    GitHub ``X-Hub-Signature-256: sha256=<hex>``, Gitea/Forgejo ``X-Gitea-Signature`` /
    ``X-Forgejo-Signature: <hex>``, GitLab ``X-Gitlab-Token: <secret>``, and the generic
    ``X-Signature-256: sha256=<hex>``.
    """
    if not secret:
        raise ValueError("an empty webhook secret would let anyone trigger the daemon")
    for header, provider, prefix in (
        ("x-hub-signature-256", "github", "sha256="),
        ("x-signature-256", "generic", "sha256="),
        ("x-forgejo-signature", "forgejo", ""),
        ("x-gitea-signature", "gitea", ""),
    ):
        value = headers.get(header)
        if value is None:
            continue
        given = value.strip().removeprefix(prefix).lower()
        # bytes: compare_digest refuses non-ASCII str, and a header is the sender's to choose
        if hmac.compare_digest(given.encode(errors="replace"), expected.encode()):
            return WebhookCheck(True, provider, "signature valid")
        return WebhookCheck(False, provider, f"{header} does not match the payload")
    token = headers.get("x-gitlab-token")
    if token is not None:
        if hmac.compare_digest(token.encode(errors="replace"), secret.encode()):
            return WebhookCheck(True, "gitlab", "token valid")
        return WebhookCheck(False, "gitlab", "X-Gitlab-Token is wrong")
    return WebhookCheck(
        False,
        "unknown",
        "no signature header (X-Hub-Signature-256, "
        "X-Gitlab-Token, X-Gitea-Signature or X-Signature-256)",
    )


#: Largest webhook body read. A push event is a few KiB to a few hundred; the body is hashed
#: as it streams in and never kept beyond this, so unsigned posts cannot grow the server.
MAX_WEBHOOK_BYTES = 1024 * 1024


def add_webhook_route(
    app: FastAPI,
    secret: str,
    on_accepted: Callable[[], None],
    metrics: OperationalMetrics,
    branch: str | None = None,
) -> None:
    """`POST /v1/webhook`: a forge says the repo changed; ``on_accepted`` asks for a look.

    With ``branch``, a signed push event that names another branch (its ``ref``) is
    acknowledged and ignored; the payload only ever narrows what triggers a look, it never
    says what changed (a missed push is caught by the poll).
    """

    @app.post("/v1/webhook", status_code=202, responses={401: {}, 413: {}})
    async def webhook(request: Request) -> JSONResponse:
        """A forge says the repo changed: look again (the payload is not trusted)."""
        digest = hmac.new(secret.encode(), digestmod=hashlib.sha256)
        body = bytearray()
        async for chunk in request.stream():
            if len(body) + len(chunk) > MAX_WEBHOOK_BYTES:
                metrics.webhook_requests.labels("too_large").inc()
                raise HTTPException(413, f"a webhook may be at most {MAX_WEBHOOK_BYTES} bytes")
            digest.update(chunk)
            body += chunk
        check = check_webhook_digest(request.headers, digest.hexdigest(), secret)
        metrics.webhook_requests.labels("accepted" if check.ok else "bad_signature").inc()
        if not check.ok:
            logger.warning("webhook refused: %s", check.reason, extra={"provider": check.provider})
            raise HTTPException(401, check.reason)
        pushed = _pushed_ref(bytes(body))
        if branch is not None and pushed is not None and pushed != f"refs/heads/{branch}":
            return JSONResponse(
                {"accepted": True, "provider": check.provider, "ignored": f"push to {pushed}"},
                status_code=202,
            )
        on_accepted()
        return JSONResponse({"accepted": True, "provider": check.provider}, status_code=202)


def _pushed_ref(body: bytes) -> str | None:
    """The ``ref`` a signed push event names (GitHub, GitLab, Gitea and Forgejo all send it),
    or None when the body says none (a ping, another event, not JSON)."""
    try:
        event = json.loads(body)
    except (ValueError, RecursionError):
        return None
    ref = event.get("ref") if isinstance(event, dict) else None
    return ref if isinstance(ref, str) else None
