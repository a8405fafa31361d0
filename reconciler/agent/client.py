"""Talking to the reconciler: one POST per report, the assignment comes back in the answer."""

from __future__ import annotations

import http.client
import json
import random
import ssl
import urllib.error
import urllib.request
from typing import Any, Dict, Optional


class ServerUnreachable(Exception):
    """The reconciler did not answer (network, TLS, 5xx); the agent backs off and retries."""


class ReportRejected(Exception):
    """The reconciler refused the report (4xx); retrying the same report will not help."""


class ReconcilerClient:
    def __init__(
        self, server: str, token: str, timeout: float = 30.0, ca_file: Optional[str] = None
    ) -> None:
        self.url = server.rstrip("/") + "/v1/report"
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=ca_file) if ca_file else None

    def report(self, body: Dict[str, Any], wait: float = 0) -> Dict[str, Any]:
        """Send a report; return the assignment. ``wait`` asks the server to hold the answer
        up to that many seconds until the assignment changes (long-poll)."""
        url = self.url + (f"?wait={int(wait)}" if wait > 0 else "")
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers={
                "Authorization": f"Bearer {self.token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(
                request, timeout=self.timeout + wait, context=self.context
            ) as response:
                answer = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            try:
                detail = exc.read().decode(errors="replace")[:500]
            except (OSError, http.client.HTTPException):
                detail = "(no readable body)"
            if 400 <= exc.code < 500:
                raise ReportRejected(f"HTTP {exc.code}: {detail}") from exc
            raise ServerUnreachable(f"HTTP {exc.code}: {detail}") from exc
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from exc
        if not isinstance(answer, dict):
            raise ServerUnreachable(
                f"the server answered {type(answer).__name__}, not an assignment object"
            )
        return answer


class Backoff:
    """Exponential backoff with full jitter, so a fleet does not retry in lockstep."""

    def __init__(
        self, base: float = 5.0, cap: float = 300.0, rng: Optional[random.Random] = None
    ) -> None:
        self.base, self.cap, self.failures = base, cap, 0
        self.rng = rng or random.Random()

    def next_delay(self) -> float:
        self.failures += 1
        exponent = min(self.failures - 1, 16)  # a days-long outage must not overflow a float
        return self.rng.uniform(0, min(self.cap, self.base * 2**exponent))

    def reset(self) -> None:
        self.failures = 0
