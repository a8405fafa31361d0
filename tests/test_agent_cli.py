"""The agent's command line: config file, flags, failures it reports instead of crashing."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from reconciler.agent.__main__ import main, parse_args
from reconciler.agent.client import ReconcilerClient, ServerUnreachable
from reconciler.agent.ostree import parse_admin_status

BOOTED_STATUS = """\
  callos 9d1c2f6a7b8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182.0 (staged)
    Version: 9.20261125.0
    origin refspec: callos:callos/9/x86_64/production
* callos 3f9a0c2e6b1d5a8f4c7e0b3d9a2f6c1e5b8d4a7f0c3e6b9d2a5f8c1e4b7d0a36.0
    Version: 9.20261117.0
    origin refspec: callos:callos/9/x86_64/production
  callos 5c2e8a1f4b7d0c3e6a9f2b5d8c1e4a7f0b3d6c9e2a5f8b1d4c7e0a3f6b9d2c58.0 (rollback)
    Version: 9.20260915.2
    origin refspec: callos:callos/9/x86_64/production
    Pinned: yes
"""


def test_ostree_admin_status_of_a_booted_host() -> None:
    listed = parse_admin_status(BOOTED_STATUS)
    assert [booted for booted, _ in listed] == [False, True, False]
    staged, booted, rollback = (d for _, d in listed)
    assert staged.version == "9.20261125.0"
    assert booted.origin == "callos:callos/9/x86_64/production"
    assert rollback.pinned
    assert parse_admin_status("garbage\n") == []


def test_config_file_then_flags(tmp_path: Path) -> None:
    config = tmp_path / "agent.conf"
    config.write_text(
        "[agent]\nserver = https://fleet.example.net\ninterval = 120\n"
        "backend = ostree\nos = callos\n"
    )
    settings = parse_args(["--config", str(config), "--interval", "30"])
    assert settings["server"] == "https://fleet.example.net"
    assert settings["interval"] == "30"  # a flag wins over the file
    assert (settings["backend"], settings["os"]) == ("ostree", "callos")
    assert settings["reboot-command"] == "systemctl reboot"


def test_unreachable_server_in_once_mode_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "token").write_text("t\n")
    code = main(
        [
            "--once",
            "--config",
            "/nonexistent",
            "--server",
            f"http://127.0.0.1:{port}",
            "--token-file",
            str(tmp_path / "token"),
            "--backend",
            "ostree",
            "--os",
            "x",
            "--sysroot",
            str(tmp_path / "no-sysroot"),
        ]
    )
    assert code == 1
    assert "reconciler-agent:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "--server"),
        (["--server", "http://x", "--token-file", "/nonexistent"], "cannot read the token"),
    ],
)
def test_usage_errors(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", "/nonexistent", *args]) == 2
    assert message in capsys.readouterr().err


def test_garbage_from_the_server_is_unreachable_not_a_crash() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def answer_garbage() -> None:
        for reply in (
            b"NOT HTTP AT ALL\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n[1,2,3]  ",
        ):
            connection, _ = listener.accept()
            connection.recv(65536)
            connection.sendall(reply)
            connection.close()

    thread = threading.Thread(target=answer_garbage, daemon=True)
    thread.start()
    client = ReconcilerClient(f"http://127.0.0.1:{listener.getsockname()[1]}", "t", timeout=5)
    for _ in range(2):
        with pytest.raises(ServerUnreachable):
            client.report({"agentVersion": "x"})
    thread.join(timeout=5)
    listener.close()
