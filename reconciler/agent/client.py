"""Talking to the reconciler: one POST per report, the assignment comes back in the answer.

The answer is trusted only as far as it is bounded: a redirect is never followed (the token
would go to whichever host the `Location` names, and that host's answer would be taken as the
assignment), and an answer larger than `MAX_ANSWER_BYTES` or nested deeper than
`MAX_ANSWER_DEPTH` is refused before it is parsed (`json` recurses, so a deep answer would
otherwise end the agent with a `RecursionError`).
"""

import http.client
import ipaddress
import json
import random
import re
import ssl
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Optional

#: An assignment is well under 1 KiB; anything this large is not one.
MAX_ANSWER_BYTES = 1024 * 1024
#: An assignment nests three levels deep (answer, target, reason).
MAX_ANSWER_DEPTH = 32
#: How much of an error answer's body is read for the message.
MAX_ERROR_DETAIL = 500


class ServerUnreachable(Exception):
    """The reconciler did not answer (network, TLS, 5xx); the agent backs off and retries."""


class AnswerRefused(ServerUnreachable):
    """What answered is not an answer the agent will use (a redirect, too large, too deep,
    not a JSON object): the server's or the network's fault, so the agent backs off too."""


class ReportRejected(Exception):
    """The reconciler refused the report (4xx); retrying the same report will not help."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every 3xx into an error instead of a new request (which would carry the token)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class ReconcilerClient:
    def __init__(
        self,
        server: str,
        token: str,
        timeout: float = 30.0,
        ca_file: Optional[str] = None,
        client_cert: Optional[str] = None,
        client_key: Optional[str] = None,
    ) -> None:
        self.url = server.rstrip("/") + "/v1/report"
        self.token = token
        self.timeout = timeout
        context = None
        if ca_file or client_cert:
            context = ssl.create_default_context(cafile=ca_file or None)
            if client_cert:  # mutual TLS: the host's certificate from the fleet CA
                context.load_cert_chain(client_cert, client_key or None)
        self.opener = urllib.request.build_opener(
            _NoRedirects(), urllib.request.HTTPSHandler(context=context)
        )

    def _headers(self) -> Dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:  # none when the host proves itself by its certificate alone
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def report(self, body: Dict[str, Any], wait: float = 0) -> Dict[str, Any]:
        """Send a report; return the assignment. ``wait`` asks the server to hold the answer
        up to that many seconds until the assignment changes (long-poll)."""
        url = self.url + (f"?wait={int(wait)}" if wait > 0 else "")
        request = urllib.request.Request(
            url,
            data=json.dumps(body).encode(),
            method="POST",
            headers=self._headers(),
        )
        try:
            with self.opener.open(request, timeout=self.timeout + wait) as response:
                raw = _read_capped(response)
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from exc
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as exc:
            raise ServerUnreachable(f"{type(exc).__name__}: {exc}") from exc
        return parse_answer(raw)


def parse_answer(raw: bytes) -> Dict[str, Any]:
    """The assignment in ``raw``, or `AnswerRefused` saying why it is not one."""
    depth = _nesting_depth(raw)
    if depth > MAX_ANSWER_DEPTH:
        raise AnswerRefused(
            f"the server's answer is nested deeper than {MAX_ANSWER_DEPTH} levels; refused"
        )
    try:
        answer = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise AnswerRefused(f"the server's answer is not JSON: {exc}") from exc
    if not isinstance(answer, dict):
        raise AnswerRefused(
            f"the server answered {type(answer).__name__}, not an assignment object"
        )
    return answer


def _read_capped(response: Any) -> bytes:
    declared = response.headers.get("Content-Length")
    if declared and declared.strip().isdigit() and int(declared) > MAX_ANSWER_BYTES:
        raise AnswerRefused(_too_large(f"{int(declared)} bytes declared"))
    raw: bytes = response.read(MAX_ANSWER_BYTES + 1)
    if len(raw) > MAX_ANSWER_BYTES:
        raise AnswerRefused(_too_large("more was sent"))
    return raw


def _too_large(detail: str) -> str:
    return f"the server's answer is larger than {MAX_ANSWER_BYTES >> 20} MiB ({detail}); refused"


# A token is a bracket or a whole string (strings may hold brackets). A string that never
# closes runs to the end, so every scan is one linear pass, whatever the text.
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\\?\Z)|[\[\]{}]', re.DOTALL)


def _nesting_depth(raw: bytes) -> int:
    """How deep arrays and objects nest in JSON text, up to one past the limit.

    A scan that never recurses, so it is safe on text `json` would recurse too deeply on.
    """
    depth = deepest = 0
    for token in _TOKEN.finditer(raw):
        bracket = token.group()
        if bracket in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
            if deepest > MAX_ANSWER_DEPTH:
                break
        elif bracket in (b"]", b"}"):
            depth -= 1
    return deepest


def _refusal(exc: urllib.error.HTTPError) -> Exception:
    """What an error status means for the agent; a 3xx is a redirect it did not follow."""
    with exc:  # closes the connection, however little of the body was read
        if 300 <= exc.code < 400:
            location = (exc.headers.get("Location") if exc.headers else None) or "(none)"
            location = location if len(location) <= 200 else location[:197] + "..."
            return AnswerRefused(
                f"HTTP {exc.code} redirect to {location} refused: the agent does not follow "
                "redirects, so its token goes only to --server; point --server at the "
                "reconciler itself"
            )
        try:
            detail = exc.read(MAX_ERROR_DETAIL).decode(errors="replace")
        except (OSError, http.client.HTTPException):
            detail = "(no readable body)"
    if 400 <= exc.code < 500:
        return ReportRejected(f"HTTP {exc.code}: {detail}")
    return ServerUnreachable(f"HTTP {exc.code}: {detail}")


def server_problem(server: str) -> Optional[str]:
    """Why ``server`` cannot be the reconciler's URL, or None when it can."""
    try:
        scheme = urllib.parse.urlsplit(server).scheme.lower()
    except ValueError as exc:  # e.g. an unclosed `[` around an IPv6 address
        return f"--server {server!r} is not a URL: {exc}"
    if scheme not in ("http", "https"):
        return f"--server {server!r} must be an http:// or https:// URL"
    return None


def plaintext_warning(server: str) -> Optional[str]:
    """A warning when ``server`` is plain `http://` to a host other than this one."""
    try:
        parts = urllib.parse.urlsplit(server)
    except ValueError:
        return None  # server_problem() says what is wrong with it
    if parts.scheme.lower() != "http" or _is_loopback(parts.hostname or ""):
        return None
    return (
        f"the server {server} is plain http:// to another host: the token and every report "
        "cross the network unencrypted, and anyone on the path can read the token and "
        "answer in the reconciler's place; use https://"
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
