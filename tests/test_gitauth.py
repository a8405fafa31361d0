"""An HTTPS-style fleet repo that asks for a token: fetch, rollout notes and promotion over a
real Git smart-HTTP server (`git http-backend`) on 127.0.0.1 with HTTP Basic authentication."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.clock import ManualClock
from reconciler.errors import GitRemoteUnavailable
from reconciler.git.auth import GitCredentials
from reconciler.promotion.commit import PromotionOutcome
from reconciler.serve.daemon import ServeConfig, open_daemon
from reconciler.serve.server import Listen
from tests.conftest import git
from tests.fleet_driver import ReportingFleet
from tests.git_http import git_http_server
from tests.test_daemon import OLD_PRODUCTION, no_urls
from tests.test_gitsource import Remote
from tests.test_writeback import IDENTITY, START, notes, soak_lab

TOKEN = "glpat-0123456789abcdef"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Remote, str]]:
    origin = Remote(tmp_path)  # tmp_path/origin.git
    origin.commit("no example urls", no_urls)
    with git_http_server(tmp_path, "fleet-bot", TOKEN) as base:
        yield origin, f"{base}/origin.git"


def serve_config(tmp_path: Path, url: str, credentials: GitCredentials) -> ServeConfig:
    return ServeConfig(
        repo=url,
        state_dir=tmp_path / "state",
        listen=Listen("127.0.0.1", 0),
        identity=IDENTITY,
        credentials=credentials,
    )


def test_fetch_notes_and_promotion_over_https_with_a_token(
    tmp_path: Path, served: tuple[Remote, str]
) -> None:
    origin, url = served
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    credentials = GitCredentials(username="fleet-bot", token_file=token_file)
    clock = ManualClock(START)
    daemon = open_daemon(serve_config(tmp_path, url, credentials), clock)
    assert daemon.service.fleet.revision == git(origin.bare, "rev-parse", "main")
    fleet = ReportingFleet(
        daemon.service, clock, {name: OLD_PRODUCTION for name in daemon.service.fleet.hosts}
    )
    soak_lab(daemon, fleet, hours=49)
    written = daemon.writeback.publish_notes()
    assert written is not None
    assert written.pushed
    assert "staging-lab rollout 1" in notes(origin)
    [attempt] = daemon.writeback.promote_due()
    assert attempt.written is not None
    assert attempt.written.outcome is PromotionOutcome.PUSHED
    assert git(origin.bare, "rev-parse", "main") == attempt.written.commit
    assert daemon.sync().accepted  # and fetched back over HTTP


@pytest.mark.parametrize(
    ("credentials", "message"),
    [
        (GitCredentials(), "asks for credentials and none that it accepts are configured"),
        (GitCredentials(username="fleet-bot", token_file=Path("wrong")), "refused the configured"),
    ],
)
def test_missing_or_wrong_credentials_are_a_clear_error(
    tmp_path: Path, served: tuple[Remote, str], credentials: GitCredentials, message: str
) -> None:
    _, url = served
    if credentials.token_file is not None:
        wrong = tmp_path / "wrong-token"
        wrong.write_text("not-the-token\n")
        credentials = GitCredentials(username=credentials.username, token_file=wrong)
    with pytest.raises(GitRemoteUnavailable, match=message):
        open_daemon(serve_config(tmp_path, url, credentials), ManualClock(START))
