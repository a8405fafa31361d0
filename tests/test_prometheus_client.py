"""The Prometheus client against a real Prometheus scraping fake hosts (tests/prometheus_harness),
and, for what a real Prometheus cannot show (the headers it was sent, a server that never
answers, a redirect), a small HTTP server on 127.0.0.1 that records each request."""

from __future__ import annotations

import base64
import json
import math
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from reconciler.serve.prometheus import (
    LONGEST_GET_QUERY,
    PrometheusClient,
    PrometheusConnection,
    QueryAnswer,
)
from tests.prometheus_harness import PrometheusServer, TlsFiles, require_tool, running_prometheus

needs_prometheus = pytest.mark.needs_tool("prometheus")
needs_openssl = pytest.mark.needs_tool("openssl")

FAILURE_RATIO = {"c1": 0.01, "c2": 0.02, "c3": 0.5}


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    with running_prometheus(tmp_path_factory.mktemp("prometheus"), [*FAILURE_RATIO]) as server:
        for host, ratio in FAILURE_RATIO.items():
            server.hosts[host].gauge("call_failure_ratio").set(ratio)
        server.hosts["c3"].gauge("jitter_seconds").set(math.nan)
        server.hosts["c1"].counter("calls").inc(7)
        server.wait_for("call_failure_ratio", lambda r: len(r) == len(FAILURE_RATIO))
        server.wait_for("jitter_seconds or calls_total", lambda r: len(r) == 2)
        yield server


def client_for(url: str, **options: object) -> PrometheusClient:
    return PrometheusClient(PrometheusConnection(url, **options))  # type: ignore[arg-type]


def by_instance(answer: QueryAnswer) -> dict[str, float]:
    assert answer.error is None, answer.error
    return {
        labels["instance"]: value
        for labels, value in zip(answer.series, answer.values, strict=True)
    }


# --- against the real Prometheus ---------------------------------------------------------


@needs_prometheus
def test_a_scalar_is_one_value_without_labels(prometheus: PrometheusServer) -> None:
    answer = client_for(prometheus.url).query('scalar(sum(call_failure_ratio{job="hosts"}))')
    assert answer.error is None
    assert answer.values == pytest.approx((sum(FAILURE_RATIO.values()),))
    assert answer.series == ({},)


@needs_prometheus
def test_a_vector_keeps_each_hosts_labels(prometheus: PrometheusServer) -> None:
    answer = client_for(prometheus.url).query('call_failure_ratio{instance=~"(c1|c3)"}')
    assert by_instance(answer) == {"c1": FAILURE_RATIO["c1"], "c3": FAILURE_RATIO["c3"]}
    assert {labels["job"] for labels in answer.series} == {"hosts"}
    assert {labels["__name__"] for labels in answer.series} == {"call_failure_ratio"}


@needs_prometheus
def test_each_fake_host_is_its_own_target_and_counters_are_scraped(
    prometheus: PrometheusServer,
) -> None:
    client = client_for(prometheus.url)
    assert by_instance(client.query('up{job="hosts"}')) == {host: 1.0 for host in FAILURE_RATIO}
    assert by_instance(client.query("calls_total")) == {"c1": 7.0}


@needs_prometheus
def test_an_empty_vector_is_no_values_and_no_error(prometheus: PrometheusServer) -> None:
    answer = client_for(prometheus.url).query('call_failure_ratio{instance="nowhere"}')
    assert answer == QueryAnswer(values=(), series=(), error=None)


@needs_prometheus
def test_nan_stays_nan(prometheus: PrometheusServer) -> None:
    answer = client_for(prometheus.url).query("jitter_seconds")
    assert answer.error is None
    assert len(answer.values) == 1
    assert math.isnan(answer.values[0])
    assert answer.series[0]["instance"] == "c3"


@needs_prometheus
def test_a_syntax_error_is_prometheus_own_sentence(prometheus: PrometheusServer) -> None:
    answer = client_for(prometheus.url).query("sum(call_failure_ratio")
    assert answer.values == ()
    assert answer.error is not None
    assert answer.error.startswith("Prometheus refused the query (bad_data):")
    assert "parse error" in answer.error


@needs_prometheus
@pytest.mark.parametrize(
    ("promql", "kind"), [("call_failure_ratio[1m]", "a range vector"), ('"up"', "a string")]
)
def test_a_range_vector_or_a_string_is_an_error(
    prometheus: PrometheusServer, promql: str, kind: str
) -> None:
    answer = client_for(prometheus.url).query(promql)
    assert answer == QueryAnswer(
        error=f"query must return an instant vector or a scalar, not {kind}"
    )


@needs_prometheus
def test_the_query_is_evaluated_at_the_time_asked(prometheus: PrometheusServer) -> None:
    at = datetime.now(UTC) - timedelta(hours=3, milliseconds=250)
    answer = client_for(prometheus.url).query("time()", at=at)
    assert answer.values == pytest.approx((at.timestamp(),), abs=0.001)
    with pytest.raises(ValueError, match="timezone-aware"):
        client_for(prometheus.url).query("time()", at=datetime(2026, 1, 1))


@needs_prometheus
def test_a_long_query_is_answered(prometheus: PrometheusServer) -> None:
    many_hosts = "|".join(["c1", "c2", *(f"host-{n:04}" for n in range(400))])
    promql = f'call_failure_ratio{{instance=~"({many_hosts})"}}'
    assert len(promql) > LONGEST_GET_QUERY
    answer = client_for(prometheus.url).query(promql)
    assert by_instance(answer) == {"c1": FAILURE_RATIO["c1"], "c2": FAILURE_RATIO["c2"]}


@needs_prometheus
def test_queries_from_many_threads_at_once_each_get_their_own_answer(
    prometheus: PrometheusServer,
) -> None:
    client = client_for(prometheus.url)
    hosts = [*FAILURE_RATIO] * 8
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(
            pool.map(lambda h: client.query(f'call_failure_ratio{{instance="{h}"}}'), hosts)
        )
    assert [by_instance(answer) for answer in answers] == [
        {host: FAILURE_RATIO[host]} for host in hosts
    ]


# --- a server that records what it was sent ----------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Answers every request with ``reply`` and keeps what it was sent."""

    url: str = ""
    reply: tuple[int, dict[str, str], bytes] = (200, {}, b"")
    requests: list[Recorded] = field(default_factory=list)

    def answer_scalar(self, value: float) -> None:
        data = {"resultType": "scalar", "result": [1.0, repr(value)]}
        self.reply = (200, {}, json.dumps({"status": "success", "data": data}).encode())


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    recorder = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            recorder.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            status, headers, payload = recorder.reply
            self.send_response(status)
            for name, value in {"Content-Length": str(len(payload)), **headers}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        do_POST = do_GET

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    recorder.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_short_query_is_a_get_and_a_long_one_a_post_form(recorder: Recorder) -> None:
    recorder.answer_scalar(4.0)
    client = client_for(recorder.url + "/prefix/")
    at = datetime(2026, 3, 1, 12, 0, 0, 500000, tzinfo=UTC)
    long_query = 'up{instance=~"(' + "|".join(f"h{n}" for n in range(600)) + ')"}'
    assert client.query("up", at=at).values == (4.0,)
    assert client.query(long_query).values == (4.0,)
    short, long = recorder.requests
    assert short.method == "GET"
    assert urlsplit(short.path).path == "/prefix/api/v1/query"
    assert parse_qs(urlsplit(short.path).query) == {"query": ["up"], "time": ["1772366400.500"]}
    assert (long.method, long.path) == ("POST", "/prefix/api/v1/query")
    assert long.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert parse_qs(long.body.decode()) == {"query": [long_query]}


def test_the_bearer_token_is_sent_and_read_again_at_each_query(
    recorder: Recorder, tmp_path: Path
) -> None:
    recorder.answer_scalar(1.0)
    token_file = tmp_path / "token"
    token_file.write_text("prom-token-first\n")
    client = client_for(recorder.url, bearer_token_file=token_file)
    client.query("up")
    token_file.write_text("prom-token-rotated\n")
    client.query("up")
    sent = [request.headers["Authorization"] for request in recorder.requests]
    assert sent == ["Bearer prom-token-first", "Bearer prom-token-rotated"]
    assert "prom-token" not in repr(client)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_is_sent_with_the_password_read_at_each_query(
    recorder: Recorder, tmp_path: Path
) -> None:
    recorder.answer_scalar(1.0)
    password_file = tmp_path / "password"
    password_file.write_text("prom-pass-first\n")
    client = client_for(
        recorder.url, basic_auth_user="grafana", basic_auth_password_file=password_file
    )
    client.query("up")
    password_file.write_text("prom-pass-rotated")
    client.query("up")
    sent = [request.headers["Authorization"] for request in recorder.requests]
    assert sent == [basic("grafana", "prom-pass-first"), basic("grafana", "prom-pass-rotated")]


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_shown(
    recorder: Recorder,
) -> None:
    recorder.answer_scalar(1.0)
    url = recorder.url.replace("http://", "http://alice:url-pass-93@")
    client = client_for(url)
    assert client.query("up").values == (1.0,)
    assert recorder.requests[0].headers["Authorization"] == basic("alice", "url-pass-93")
    assert "url-pass-93" not in repr(client)
    assert "url-pass-93" not in repr(client.connection)


def test_a_missing_secret_file_is_an_error_and_nothing_is_sent(
    recorder: Recorder, tmp_path: Path
) -> None:
    answer = client_for(recorder.url, bearer_token_file=tmp_path / "absent").query("up")
    assert answer.error == (
        f"cannot read the bearer token file {tmp_path / 'absent'}: no such file or directory"
    )
    assert recorder.requests == []


def test_a_redirect_is_not_followed(recorder: Recorder, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("prom-token-redirected")
    recorder.reply = (302, {"Location": "http://127.0.0.1:9/elsewhere"}, b"")
    answer = client_for(recorder.url, bearer_token_file=tmp_path / "token").query("up")
    assert answer.error == f"Prometheus at {recorder.url} answered HTTP 302"
    assert len(recorder.requests) == 1


@pytest.mark.parametrize(
    ("reply", "error"),
    [
        (
            (503, {}, b'{"status":"error","errorType":"timeout","error":"query timed out"}'),
            "Prometheus refused the query (timeout): query timed out",
        ),
        (
            (200, {}, b'{"status":"error","errorType":"execution","error":"too many samples"}'),
            "Prometheus refused the query (execution): too many samples",
        ),
        ((401, {}, b"Unauthorized\n"), "Prometheus at {url} answered HTTP 401: Unauthorized"),
        ((502, {}, b""), "Prometheus at {url} answered HTTP 502"),
        ((200, {}, b"<html>a login page</html>"), "Prometheus answered something that is not "
         "a query result"),
        ((200, {}, b'{"status":"success","data":{"resultType":"vector","result":[{}]}}'),
         "Prometheus answered something that is not a query result"),
    ],
)  # fmt: skip
def test_an_error_answer_is_a_sentence(
    recorder: Recorder, reply: tuple[int, dict[str, str], bytes], error: str
) -> None:
    recorder.reply = reply
    answer = client_for(recorder.url).query("up")
    assert answer == QueryAnswer(error=error.format(url=recorder.url))


def test_secrets_an_error_answer_echoes_are_redacted(recorder: Recorder, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("prom-token-echoed-42")
    recorder.reply = (500, {}, b"proxy rejected Bearer prom-token-echoed-42 for alice")
    answer = client_for(recorder.url, bearer_token_file=tmp_path / "token").query("up")
    assert answer.error == f"Prometheus at {recorder.url} answered HTTP 500: proxy rejected " \
        "Bearer *** for alice"  # fmt: skip


def test_an_answer_larger_than_the_limit_is_refused(recorder: Recorder) -> None:
    recorder.answer_scalar(1.0)
    size = len(recorder.reply[2])
    connection = PrometheusConnection(recorder.url)
    assert PrometheusClient(connection, max_answer_bytes=size).query("up").values == (1.0,)
    answer = PrometheusClient(connection, max_answer_bytes=size - 1).query("up")
    assert answer.error == (
        f"Prometheus at {recorder.url} answered more than {size - 1} bytes; refused "
        "(aggregate the query)"
    )


# --- Prometheus out of reach ---------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_credentials_in_the_url_are_redacted_from_errors() -> None:
    port = closed_port()
    answer = client_for(f"http://alice:url-pass-77@127.0.0.1:{port}/").query("up")
    assert answer.error == f"Prometheus at http://127.0.0.1:{port} unreachable: connection refused"
    # The URL without credentials is what errors name; a URL the client cannot use keeps its
    # credentials hidden too.
    odd = client_for("http://alice:url-pass-77@127.0.0.1:notaport").query("up")
    assert odd.error == (
        "Prometheus at http://127.0.0.1:notaport is not a URL that can be queried: "
        "nonnumeric port: 'notaport'"
    )


def test_a_server_that_never_answers_is_a_timeout() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads or answers
        port = silent.getsockname()[1]
        answer = client_for(f"http://127.0.0.1:{port}", timeout=0.3).query("up")
    assert answer == QueryAnswer(
        error=f"Prometheus at http://127.0.0.1:{port} did not answer within 0.3 s"
    )


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("ftp://127.0.0.1", {}, "not http"),
        ("http://127.0.0.1", {"bearer_token_file": Path("t"), "basic_auth_user": "u"}, "both"),
        ("http://127.0.0.1", {"basic_auth_password_file": Path("p")}, "needs a basic-auth user"),
    ],
)
def test_a_connection_that_cannot_work_is_refused_at_once(
    url: str, options: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        PrometheusConnection(url, **options)  # type: ignore[arg-type]


# --- TLS, with a real Prometheus serving HTTPS -----------------------------------------------

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"]


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    require_tool("openssl")
    pki = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "rogue-ca"):
        openssl(pki, "req", "-x509", *EC, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
                "-subj", f"/CN={ca}")  # fmt: skip
    openssl(pki, "req", *EC, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=prom")
    (pki / "server.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    openssl(pki, "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2",
            "-extfile", "server.ext")  # fmt: skip
    tls = TlsFiles(pki / "server.pem", pki / "server.key", pki / "ca.pem")
    # No hosts: these tests need Prometheus's HTTPS, not a scrape.
    with running_prometheus(tmp_path_factory.mktemp("tls-prometheus"), [], tls) as server:
        yield server


@needs_prometheus
@needs_openssl
def test_https_with_the_ca_file(tls_prometheus: PrometheusServer) -> None:
    assert tls_prometheus.url.startswith("https://")
    assert tls_prometheus.tls is not None
    ca_file = tls_prometheus.tls.ca
    assert client_for(tls_prometheus.url, ca_file=ca_file).query("6 * 7").values == (42.0,)


@needs_prometheus
@needs_openssl
def test_https_with_the_wrong_ca_is_a_tls_failure(tls_prometheus: PrometheusServer) -> None:
    assert tls_prometheus.tls is not None
    rogue = tls_prometheus.tls.ca.with_name("rogue-ca.pem")
    for options in ({"ca_file": rogue}, {}):  # a CA that did not sign it; the system's CAs
        answer = client_for(tls_prometheus.url, **options).query("6 * 7")
        assert answer.values == ()
        assert answer.error is not None
        assert answer.error.startswith(
            f"Prometheus at {tls_prometheus.url}: TLS failed: certificate verify failed: "
        ), answer.error
    insecure = client_for(tls_prometheus.url, ca_file=rogue, insecure_skip_verify=True)
    assert insecure.query("6 * 7").values == (42.0,)


@needs_prometheus
@needs_openssl
def test_a_renewed_ca_file_is_read_at_the_next_query(
    tls_prometheus: PrometheusServer, tmp_path: Path
) -> None:
    assert tls_prometheus.tls is not None
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(tls_prometheus.tls.ca.with_name("rogue-ca.pem").read_bytes())
    client = client_for(tls_prometheus.url, ca_file=ca_file)
    assert client.query("6 * 7").values == ()
    ca_file.write_bytes(tls_prometheus.tls.ca.read_bytes())
    assert client.query("6 * 7").values == (42.0,)


def test_tls_to_a_server_speaking_plain_http_is_a_tls_failure(recorder: Recorder) -> None:
    url = recorder.url.replace("http://", "https://")
    answer = client_for(url).query("up")
    assert answer.error == f"Prometheus at {url}: TLS failed: wrong version number"


def test_a_ca_file_that_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    answer = client_for(f"https://127.0.0.1:{closed_port()}", ca_file=missing).query("1")
    assert answer.error == f"cannot use the CA file {missing}: no such file or directory"


# --- the harness's own rules ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_the_harness_skips_without_prometheus_but_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("CI", ci)
    with (
        pytest.raises(outcome, match="`prometheus` is not installed"),
        running_prometheus(tmp_path, ["c1"]),
    ):
        pass


# Last, as it stops the module's Prometheus for a while.
@needs_prometheus
def test_prometheus_stopped_is_an_error_and_it_comes_back_with_its_data(
    prometheus: PrometheusServer,
) -> None:
    client = client_for(prometheus.url, timeout=2)
    before_the_outage = datetime.now(UTC)
    prometheus.stop()
    try:
        answer = client.query("call_failure_ratio")
        assert answer == QueryAnswer(
            error=f"Prometheus at {prometheus.url} unreachable: connection refused"
        )
    finally:
        prometheus.start()
    # Back on the same port (the same client reaches it), over the same storage.
    assert by_instance(client.query("call_failure_ratio")) == FAILURE_RATIO
    # A scrape cut short by the stop may leave stale markers up to a second before it, so
    # what was stored is asked over a range (which skips stale markers), not at an instant.
    earlier = client.query("last_over_time(call_failure_ratio[10m])", at=before_the_outage)
    assert by_instance(earlier) == FAILURE_RATIO
