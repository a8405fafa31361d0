"""Asking Prometheus one instant query: the numbers it answers, or why there are none.

The daemon evaluates health checks with :class:`PrometheusClient` from a worker thread, so a
query blocks and the client holds no state between queries. Whatever goes wrong on the way
(Prometheus down, a timeout, a TLS failure, an HTTP error, an answer that is not Prometheus's
JSON, a query Prometheus refuses) is an answer too, with a short sentence in ``error``: to a
health gate that is an inconclusive result, not a crash.

Secrets stay secret: the bearer token and the basic-auth password are read from their files
at every query (a rotated file is used at once) and never kept on the object; they and any
credentials in the URL are redacted from every error sentence and never appear in a repr.
A redirect is never followed, since it would carry the credentials to whichever host the
``Location`` names.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from reconciler.logs import redact, register_secret

#: Longer queries go as a POST form: proxies and Prometheus limit the length of a URL.
LONGEST_GET_QUERY = 2000
#: An answer larger than this is refused unread: a health check aggregates to a few series.
MAX_ANSWER_BYTES = 16 * 1024 * 1024
#: How much of an error answer that is not Prometheus's JSON goes into the sentence.
MAX_ERROR_DETAIL = 200


@dataclass(frozen=True, slots=True, repr=False)
class PrometheusConnection:
    """Where Prometheus is and how to prove who we are to it.

    ``url`` is the base (``https://prom.example.net:9090`` or with a path prefix); credentials
    in it (``https://user:password@host``) are sent as basic auth unless ``basic_auth_user``
    is set. ``timeout`` bounds connecting and each wait for data, in seconds. A URL that is
    not http(s), or credentials that contradict each other, raise `ValueError`: that is a
    mistake in the daemon's configuration, found when it starts.
    """

    url: str
    timeout: float = 10.0
    bearer_token_file: Path | None = None
    basic_auth_user: str | None = None
    basic_auth_password_file: Path | None = None
    ca_file: Path | None = None
    insecure_skip_verify: bool = False

    def __post_init__(self) -> None:
        if urllib.parse.urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"the Prometheus URL {redact(self.url)!r} is not http(s)://")
        if self.bearer_token_file is not None and self.basic_auth_user is not None:
            raise ValueError("use a bearer token or basic auth for Prometheus, not both")
        if self.basic_auth_password_file is not None and self.basic_auth_user is None:
            raise ValueError("a basic-auth password file needs a basic-auth user")

    def __repr__(self) -> str:
        return f"PrometheusConnection(url={redact(self.url)!r}, timeout={self.timeout!r})"


@dataclass(frozen=True, slots=True)
class QueryAnswer:
    """One instant query's result: a value and its labels per sample, or why there is none.

    A scalar is one value with no labels; an empty vector is no values and no error. NaN
    stays NaN: what it means is the caller's to decide.
    """

    values: tuple[float, ...] = ()
    series: tuple[dict[str, str], ...] = ()
    error: str | None = None


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Turns every 3xx into an HTTP error instead of a new request carrying our credentials."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class PrometheusClient:
    """Instant queries against one Prometheus; safe to call from several threads at once."""

    def __init__(
        self, connection: PrometheusConnection, max_answer_bytes: int = MAX_ANSWER_BYTES
    ) -> None:
        self.connection = connection
        self.max_answer_bytes = max_answer_bytes
        parts = urllib.parse.urlsplit(connection.url)
        # urllib would take "user:password@host" for the host name: the credentials go into
        # a header instead, and the URL we request and name in errors is without them.
        self._url_credentials = (
            (urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or ""))
            if parts.username is not None
            else None
        )
        netloc = parts.netloc.rpartition("@")[2]
        base = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
        self._endpoint = base + "/api/v1/query"
        self._shown_url = base

    def __repr__(self) -> str:
        return f"PrometheusClient({self.connection!r})"

    def query(self, promql: str, at: datetime | None = None) -> QueryAnswer:
        """Evaluate ``promql`` at ``at`` (Prometheus's now if None); never raises for what
        Prometheus or the network does."""
        if at is not None and at.tzinfo is None:
            raise ValueError("the evaluation time must be timezone-aware")
        form = {"query": promql}
        if at is not None:
            form["time"] = f"{at.timestamp():.3f}"
        try:
            request = self._request(urllib.parse.urlencode(form))
            handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
            if self._endpoint.startswith("https:"):
                handlers.append(urllib.request.HTTPSHandler(context=self._tls_context()))
            opener = urllib.request.build_opener(*handlers)
            with opener.open(request, timeout=self.connection.timeout) as response:
                raw = self._read_capped(response)
        except urllib.error.HTTPError as exc:
            try:
                return QueryAnswer(error=redact(self._refusal(exc)))
            finally:
                exc.close()
        except _Unusable as exc:
            return QueryAnswer(error=redact(str(exc)))
        except (OSError, http.client.HTTPException, ValueError) as exc:
            # URLError is an OSError; ValueError and InvalidURL: a URL urllib cannot use.
            return QueryAnswer(error=redact(self._unreachable(exc)))
        return _parse(raw)

    def _request(self, encoded_form: str) -> urllib.request.Request:
        headers = {"Accept": "application/json", **self._auth_headers()}
        if len(encoded_form) <= LONGEST_GET_QUERY:
            return urllib.request.Request(f"{self._endpoint}?{encoded_form}", headers=headers)
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        return urllib.request.Request(
            self._endpoint, data=encoded_form.encode(), headers=headers, method="POST"
        )

    def _auth_headers(self) -> dict[str, str]:
        """The Authorization header, from the secret files as they are now."""
        connection = self.connection
        if connection.bearer_token_file is not None:
            token = _read_secret(connection.bearer_token_file, "bearer token")
            return {"Authorization": f"Bearer {token}"}
        user, password = connection.basic_auth_user, ""
        if connection.basic_auth_password_file is not None:
            password = _read_secret(connection.basic_auth_password_file, "basic-auth password")
        if user is None and self._url_credentials is not None:
            user, password = self._url_credentials
            register_secret(password)
        if user is None:
            return {}
        pair = base64.b64encode(f"{user}:{password}".encode()).decode()
        return {"Authorization": f"Basic {pair}"}

    def _tls_context(self) -> ssl.SSLContext:
        # Built per query, so a renewed CA file is read like a rotated token.
        ca_file = self.connection.ca_file
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
        except (OSError, ssl.SSLError) as exc:
            raise _Unusable(f"cannot use the CA file {ca_file}: {_reason(exc)}") from exc
        if self.connection.insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def _read_capped(self, response: http.client.HTTPResponse) -> bytes:
        raw = response.read(self.max_answer_bytes + 1)
        if len(raw) > self.max_answer_bytes:
            raise _Unusable(
                f"Prometheus at {self._shown_url} answered more than "
                f"{self.max_answer_bytes} bytes; refused (aggregate the query)"
            )
        return raw

    def _refusal(self, exc: urllib.error.HTTPError) -> str:
        """The sentence for an HTTP error status: Prometheus's own error when it sent one."""
        try:
            body = exc.read(MAX_ERROR_DETAIL * 10)
        except (OSError, http.client.HTTPException):
            body = b""
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if isinstance(answer, dict) and answer.get("status") == "error":
            return _prometheus_error(answer)
        detail = body.decode(errors="replace").strip()[:MAX_ERROR_DETAIL]
        return f"Prometheus at {self._shown_url} answered HTTP {exc.code}" + (
            f": {detail}" if detail else ""
        )

    def _unreachable(self, exc: BaseException) -> str:
        if isinstance(exc, urllib.error.URLError) and isinstance(exc.reason, BaseException):
            exc = exc.reason
        where = f"Prometheus at {self._shown_url}"
        if isinstance(exc, TimeoutError):
            return f"{where} did not answer within {self.connection.timeout:g} s"
        if isinstance(exc, ssl.SSLError):
            return f"{where}: TLS failed: {_reason(exc)}"
        if isinstance(exc, ValueError | http.client.InvalidURL):
            return f"{where} is not a URL that can be queried: {exc}"
        return f"{where} unreachable: {_reason(exc)}"


class _Unusable(Exception):
    """A query that cannot be sent or an answer that cannot be used; the message says why."""


def _read_secret(path: Path, what: str) -> str:
    try:
        secret = path.read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise _Unusable(f"cannot read the {what} file {path}: {_reason(exc)}") from exc
    register_secret(secret)
    return secret


def _reason(exc: BaseException) -> str:
    """The human part of an OS or TLS error, without errno numbers and library codes."""
    if isinstance(exc, ssl.SSLCertVerificationError) and exc.verify_message:
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return str(exc) or type(exc).__name__


def _prometheus_error(answer: dict[str, Any]) -> str:
    kind, error = answer.get("errorType"), answer.get("error")
    return f"Prometheus refused the query ({kind}): {error}"


def _parse(raw: bytes) -> QueryAnswer:
    """The answer in Prometheus's JSON, or an error saying why it is not one we can use."""
    try:
        answer = json.loads(raw)
        if answer.get("status") == "error":
            return QueryAnswer(error=redact(_prometheus_error(answer)))
        data = answer["data"]
        kind, result = data["resultType"], data["result"]
        if kind == "scalar":
            return QueryAnswer(values=(_number(result),), series=({},))
        if kind == "vector":
            values = tuple(_number(sample["value"]) for sample in result)
            series = tuple({str(k): str(v) for k, v in s["metric"].items()} for s in result)
            return QueryAnswer(values=values, series=series)
        kind = {"matrix": "a range vector", "string": "a string"}.get(kind, repr(kind))
    except (ValueError, TypeError, KeyError, AttributeError):
        return QueryAnswer(error="Prometheus answered something that is not a query result")
    return QueryAnswer(error=f"query must return an instant vector or a scalar, not {kind}")


def _number(pair: Any) -> float:
    """The value of a ``[timestamp, "value"]`` pair; Prometheus spells NaN and ±Inf as text."""
    _, text = pair
    if not isinstance(text, str):
        raise TypeError("a sample value is a string")
    return float(text)
