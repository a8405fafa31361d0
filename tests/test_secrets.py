"""Secrets never leave: planted credentials are in no log line, state file, note or metric,
and text logs cannot be forged by what others write."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from reconciler import logs
from reconciler.clock import ManualClock
from reconciler.errors import GitRemoteUnavailable
from reconciler.git.auth import GitCredentials, credentials_from_url
from reconciler.serve.daemon import open_daemon
from reconciler.serve.server import BackgroundServer
from tests.conftest import git
from tests.fleet_driver import ReportingFleet
from tests.git_http import git_http_server
from tests.test_daemon import OLD_PRODUCTION, no_urls
from tests.test_gitauth import serve_config
from tests.test_gitsource import Remote
from tests.test_writeback import START, soak_lab

TOKEN = "glpat-planted-0123456789"
WEBHOOK = "whsec-planted-9876543210"


class Everything(logging.Handler):
    """Every record of the run, formatted both ways, as an operator would see them."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.text, self.json = logs.TextFormatter(), logs.JsonFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.text.format(record))
        self.lines.append(self.json.format(record))


@pytest.fixture
def captured() -> Iterator[Everything]:
    handler = Everything()
    root = logging.getLogger()
    root.addHandler(handler)
    level, root.level = root.level, logging.DEBUG
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def state_bytes(state: Path) -> bytes:
    return b"".join(f.read_bytes() for f in state.rglob("*") if f.is_file())


def with_credentials(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{parts.netloc}"))


def test_a_token_in_the_repo_url_is_in_no_log_state_file_note_or_metric(
    tmp_path: Path, captured: Everything
) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    with git_http_server(tmp_path, "fleet-bot", TOKEN) as base:
        url = with_credentials(f"{base}/origin.git", "fleet-bot", TOKEN)
        config = serve_config(tmp_path, url, GitCredentials())
        clock = ManualClock(START)
        daemon = open_daemon(config, clock)  # clones and fetches with the URL's token
        fleet = ReportingFleet(
            daemon.service, clock, {n: OLD_PRODUCTION for n in daemon.service.fleet.hosts}
        )
        soak_lab(daemon, fleet, hours=49)
        assert daemon.writeback.publish_notes() is not None
        with BackgroundServer(daemon.app, config.listen) as server:
            metrics = httpx.get(server.url + "/metrics").text
        state_files = state_bytes(tmp_path / "state")  # before the remote is changed below
        daemon.mirror.repo.remotes.set_url("origin", f"{base}/missing.git")
        with pytest.raises(GitRemoteUnavailable) as refused:
            daemon.sync()  # an error about the remote, logged and raised
        logging.getLogger("reconciler.test").error("fetch failed: %s (was %s)", refused.value, url)
        daemon.store.close()
        daemon.reports.close()

    notes = git(origin.bare, "log", "--notes=rollouts", "--format=%N", "main")
    state_files += state_bytes(tmp_path / "state")
    for where, text in {
        "logs": "\n".join(captured.lines),
        "notes": notes,
        "metrics": metrics,
    }.items():
        assert TOKEN not in text, where
    assert TOKEN.encode() not in state_files  # not even in the mirror's Git config
    assert "http://***@127.0.0.1" in "\n".join(captured.lines)  # redacted, not dropped


def test_a_url_password_becomes_a_credential_not_part_of_the_url() -> None:
    url, credentials = credentials_from_url(
        "https://bot:s3cr%40t-token@git.example.net/ops/fleet.git", GitCredentials()
    )
    assert url == "https://git.example.net/ops/fleet.git"
    assert (credentials.username, credentials.password) == ("bot", "s3cr@t-token")
    assert "s3cr@t-token" not in repr(credentials)
    assert credentials_from_url("ssh://git@host/fleet.git", GitCredentials())[0] == (
        "ssh://git@host/fleet.git"
    )


def test_registered_secrets_and_url_credentials_are_redacted_in_both_formats() -> None:
    logs.register_secret(WEBHOOK)
    record = logging.LogRecord(
        "reconciler.x", logging.ERROR, __file__, 1, "secret %s at %s", None, None
    )
    record.args = (WEBHOOK, "https://u:pw-123456@h/x")
    for formatter in (logs.TextFormatter(), logs.JsonFormatter()):
        line = formatter.format(record)
        assert WEBHOOK not in line
        assert "pw-123456" not in line
        assert "https://***@h/x" in line


def test_a_newline_in_what_others_wrote_cannot_forge_a_text_log_line() -> None:
    forged = "boom\n2026-11-30 07:00:00,000 INFO reconciler.serve.revisions: fleet revision applied"
    record = logging.LogRecord(
        "reconciler.serve.service", logging.WARNING, __file__, 1, "report: %s", (forged,), None
    )
    record.host = "evil\r\nhost"
    try:
        raise ValueError(forged)
    except ValueError:
        record.exc_info = sys.exc_info()
    line = logs.TextFormatter().format(record)
    first, *rest = line.split("\n")
    assert "boom\\n2026-11-30" in first  # escaped, on the record's own line
    assert "host=evil\\r\\nhost" in first
    assert rest  # the traceback, below ...
    assert all(row.startswith("    | ") for row in rest)  # ... and marked as its continuation
