"""`reconciler serve` as a process: SIGTERM stops it cleanly, a restart resumes the rollout."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from reconciler.cli import main
from reconciler.git.signatures import SignatureTrust
from reconciler.git.writer import CommitSigner
from reconciler.serve.daemon import ServeConfig, promotion_allowed
from tests.test_daemon import NEW_PRODUCTION, agent_report, no_urls, wait_for
from tests.test_gitsource import Remote, replace

RECONCILER = Path(sys.executable).parent / "reconciler"
TOKEN = {"Authorization": "Bearer demo-token-lab-call-01"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(origin: Remote, state: Path, port: int) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [
            str(RECONCILER),
            "serve",
            "--repo",
            str(origin.bare),
            "--state-dir",
            str(state),
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "RECONCILER_POLL_INTERVAL": "3600"},
    )

    def up() -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
        except httpx.TransportError:
            assert process.poll() is None, process.communicate()[1][-2000:]
            return False

    wait_for(up, timeout=30)
    return process


def test_sigterm_then_restart_resumes_mid_rollout(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    staging = "8e1b4d5f2a7c9e0b3d6f1a4c7e2b5d8f0a3c6e9b2d5f8a1c4e7b0d3f6a9c2e5b"
    origin.commit("a new staging build", replace("streams/staging.yaml", staging, NEW_PRODUCTION))
    state, port = tmp_path / "state", free_port()
    url = f"http://127.0.0.1:{port}/v1/report"
    process = serve(origin, state, port)
    first = httpx.post(url, json=agent_report(staging), headers=TOKEN).json()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err[-2000:]
    assert '"message": "stopped"' in err
    assert "Traceback" not in err

    process = serve(origin, state, port)
    try:
        again = httpx.post(url, json=agent_report(staging), headers=TOKEN).json()
        assert again["assignmentId"] == first["assignmentId"]  # the same decision, not a new one
        assert again["target"]["commit"] == NEW_PRODUCTION
        ready = httpx.get(f"http://127.0.0.1:{port}/readyz").json()
        assert ready["revision"] is not None
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--signing-ssh-key", "k", "--signing-gpg-key", "ABCD"], "not both"),
        (["--signing-ssh-key", "/nonexistent/key"], "does not exist"),
    ],
)
def test_signing_settings_are_checked_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    args = ["serve", "--repo", str(tmp_path), "--state-dir", str(tmp_path / "s"), *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_no_promotion_without_a_key_when_signatures_are_required(tmp_path: Path) -> None:
    signers = tmp_path / "allowed_signers"
    required = ServeConfig(
        repo="x", state_dir=tmp_path, signatures=SignatureTrust(allowed_signers=signers)
    )
    # Its own unsigned promotion would be refused, and block every revision pushed on top.
    assert not promotion_allowed(required)
    key = tmp_path / "bot_ed25519"
    assert promotion_allowed(dataclasses.replace(required, signer=CommitSigner(ssh_key=key)))
    assert promotion_allowed(ServeConfig(repo="x", state_dir=tmp_path))
    assert not promotion_allowed(ServeConfig(repo="x", state_dir=tmp_path, promote=False))
