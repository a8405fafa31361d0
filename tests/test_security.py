"""Trust boundaries of `reconciler serve` (docs/security.md): what anyone who can reach the
API may see, what needs a token, transport, and file modes."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from reconciler.cli import main
from reconciler.serve.server import Listen, plain_http_refusal
from reconciler.serve.service import token_hash
from tests.daemon_support import BackgroundDaemon
from tests.test_daemon import config, no_urls
from tests.test_gitsource import Remote

OPS, SCRAPER = "ops-token", "scrape-token"


@pytest.fixture
def running(tmp_path: Path) -> Iterator[BackgroundDaemon]:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    settings = config(
        tmp_path,
        origin,
        operator_token_sha256=token_hash(OPS),
        metrics_token_sha256=token_hash(SCRAPER),
    )
    with BackgroundDaemon(settings) as daemon:
        yield daemon


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_readyz_tells_anyone_only_whether_it_is_ready(running: BackgroundDaemon) -> None:
    public = httpx.get(running.url + "/readyz").json()
    assert set(public) == {"status", "revision"}
    assert "lastVerdict" in httpx.get(running.url + "/readyz", headers=bearer(OPS)).json()
    wrong = httpx.get(running.url + "/readyz", headers=bearer("guess")).json()
    assert "lastVerdict" not in wrong


def test_metrics_need_the_scrape_token_when_one_is_set(running: BackgroundDaemon) -> None:
    assert httpx.get(running.url + "/metrics").status_code == 401
    assert httpx.get(running.url + "/metrics", headers=bearer(OPS)).status_code == 401
    scraped = httpx.get(running.url + "/metrics", headers=bearer(SCRAPER))
    assert scraped.status_code == 200
    assert "fleet_repo_revision_info" in scraped.text


def test_no_third_party_assets_are_served(running: BackgroundDaemon) -> None:
    assert httpx.get(running.url + "/docs").status_code == 404
    assert httpx.get(running.url + "/redoc").status_code == 404
    assert httpx.get(running.url + "/openapi.json").status_code == 200  # the document itself


@pytest.mark.parametrize(
    ("host", "cert", "insecure", "refused"),
    [
        ("127.0.0.1", None, False, False),
        ("::1", None, False, False),
        ("localhost", None, False, False),
        ("0.0.0.0", None, False, True),
        ("192.0.2.10", None, False, True),
        ("192.0.2.10", "cert.pem", False, False),
        ("192.0.2.10", None, True, False),
    ],
)
def test_plain_http_beyond_loopback_needs_certificates_or_an_explicit_opt_out(
    host: str, cert: str | None, insecure: bool, refused: bool
) -> None:
    listen = Listen(host, 8443, cert, "key.pem" if cert else None)
    assert (plain_http_refusal(listen, insecure) is not None) == refused


def test_serve_refuses_plain_http_on_a_public_address(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["serve", "--repo", str(tmp_path), "--state-dir", str(tmp_path / "s")]
    assert main([*args, "--host", "0.0.0.0"]) == 2
    assert "refusing plain HTTP on 0.0.0.0" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()  # refused before anything was written


def test_state_is_private_whatever_the_umask(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    previous = os.umask(0o022)
    try:
        with BackgroundDaemon(config(tmp_path, origin)):
            pass
    finally:
        os.umask(previous)
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    database = state / "state.sqlite"
    assert stat.S_IMODE(database.stat().st_mode) == 0o600
