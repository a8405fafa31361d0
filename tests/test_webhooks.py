"""Webhooks: each forge's signature scheme, and the daemon acting only on valid ones."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.datastructures import Headers

from reconciler.serve.api.webhooks import MAX_WEBHOOK_BYTES, check_webhook
from tests.daemon_support import BackgroundDaemon
from tests.test_daemon import NEW_PRODUCTION, OLD_PRODUCTION, config, no_urls, wait_for
from tests.test_gitsource import Remote, replace

SECRET = "webhook-secret"
BODY = json.dumps({"ref": "refs/heads/main"}).encode()
GOOD = hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


@pytest.mark.parametrize(
    ("headers", "ok", "provider"),
    [
        ({"X-Hub-Signature-256": f"sha256={GOOD}"}, True, "github"),
        ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, False, "github"),
        ({"X-Gitea-Signature": GOOD}, True, "gitea"),
        ({"X-Forgejo-Signature": GOOD.upper()}, True, "forgejo"),
        ({"X-Gitea-Signature": "nope"}, False, "gitea"),
        ({"X-Gitlab-Token": SECRET}, True, "gitlab"),
        ({"X-Gitlab-Token": "guess"}, False, "gitlab"),
        ({"X-Signature-256": f"sha256={GOOD}"}, True, "generic"),
        ({}, False, "unknown"),
    ],
)
def test_signatures(headers: dict[str, str], ok: bool, provider: str) -> None:
    check = check_webhook(Headers(headers), BODY, SECRET)
    assert (check.ok, check.provider) == (ok, provider)


def test_only_a_valid_webhook_makes_the_daemon_look_again(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    settings = config(tmp_path, origin, watch=False, webhook_secret=SECRET)
    with BackgroundDaemon(settings) as running:
        pushed = origin.commit(
            "production", replace("streams/production.yaml", OLD_PRODUCTION, NEW_PRODUCTION)
        )
        bad = httpx.post(
            running.url + "/v1/webhook",
            content=BODY,
            headers={
                "X-Hub-Signature-256": "sha256=" + "0" * 64,
                "Content-Type": "application/json",
            },
        )
        assert bad.status_code == 401
        assert bad.headers["content-type"] == "application/problem+json"
        assert httpx.get(running.url + "/readyz").json()["revision"] != pushed
        good = httpx.post(
            running.url + "/v1/webhook",
            content=BODY,
            headers={"X-Hub-Signature-256": f"sha256={GOOD}", "Content-Type": "application/json"},
        )
        assert good.status_code == 202
        wait_for(lambda: httpx.get(running.url + "/readyz").json()["revision"] == pushed)


def signed(body: bytes) -> dict[str, str]:
    digest = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


def test_a_body_over_the_cap_is_refused_before_it_is_kept(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    settings = config(tmp_path, origin, watch=False, webhook_secret=SECRET)
    with BackgroundDaemon(settings) as running:
        huge = b"[" + b"1," * (MAX_WEBHOOK_BYTES // 2) + b"1]"  # over 1 MiB, unsigned

        def chunks() -> Iterator[bytes]:  # streamed: no Content-Length to trust
            for start in range(0, len(huge), 64 * 1024):
                yield huge[start : start + 64 * 1024]

        answer = httpx.post(running.url + "/v1/webhook", content=chunks())
        assert answer.status_code == 413
        metrics = httpx.get(running.url + "/metrics").text
        assert 'fleet_webhook_requests_total{result="too_large"} 1.0' in metrics


def test_a_signed_push_to_another_branch_is_acknowledged_and_ignored(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    settings = config(tmp_path, origin, watch=False, webhook_secret=SECRET)
    with BackgroundDaemon(settings) as running:
        other = json.dumps({"ref": "refs/heads/feature"}).encode()
        answer = httpx.post(running.url + "/v1/webhook", content=other, headers=signed(other))
        assert answer.status_code == 202
        assert answer.json()["ignored"] == "push to refs/heads/feature"
        ping = json.dumps({"zen": "hello"}).encode()  # no ref: a look, as before
        assert (
            "ignored"
            not in httpx.post(
                running.url + "/v1/webhook", content=ping, headers=signed(ping)
            ).json()
        )
