"""The agent's command line: config file, flags, failures it reports instead of crashing."""

from __future__ import annotations

import logging
import socket
import threading
from pathlib import Path

import pytest

from reconciler.agent.__main__ import _bounded, main, parse_args
from reconciler.agent.client import MAX_ANSWER_DEPTH, ReconcilerClient, ServerUnreachable
from reconciler.agent.ostree import parse_admin_status
from tests.agent_http import Reply, serving

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


def once_against(server: str, tmp_path: Path) -> int:
    """`reconciler-agent --once` with the ostree backend on a sysroot that does not exist."""
    (tmp_path / "token").write_text("t\n")
    return main(
        [
            "--once",
            "--config",
            "/nonexistent",
            "--server",
            server,
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


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"action": "none", "reportAfterSeconds": 1' + b"0" * 400 + b"}",
    ],
    ids=["deeply-nested", "delay-too-large-for-a-float"],
)
def test_a_hostile_answer_is_an_error_not_a_traceback(
    body: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(lambda: Reply(chunks=(body,))) as server:
        code = once_against(server.url, tmp_path)
    assert code in (0, 1)
    assert "Traceback" not in capsys.readouterr().err


def test_a_deeply_nested_answer_is_reported_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(lambda: Reply(chunks=(b"[" * 100_000 + b"]" * 100_000,))) as server:
        assert once_against(server.url, tmp_path) == 1
    assert f"nested deeper than {MAX_ANSWER_DEPTH}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "hint",
    [10**400, float("inf"), float("nan"), "soon", None, [1]],
    ids=["int-past-1e308", "inf", "nan", "text", "null", "list"],
)
def test_a_junk_delay_hint_means_the_interval(hint: object) -> None:
    assert _bounded(hint, 60.0) == 60.0


def test_plain_http_to_another_host_is_warned_about_once_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    args = ["--config", "/nonexistent", "--token-file", str(tmp_path / "missing")]
    with caplog.at_level(logging.WARNING, logger="reconciler-agent"):
        assert main([*args, "--server", "http://fleet.example.net:8080"]) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "http://fleet.example.net:8080" in warnings[0]
    assert "token" in warnings[0]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reconciler-agent"):
        assert main([*args, "--server", "https://fleet.example.net"]) == 2
        with serving(Reply) as server:
            assert once_against(server.url, tmp_path) == 0  # plain HTTP, but on loopback
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []


@pytest.mark.parametrize(
    ("server", "message"),
    [
        ("file:///etc/passwd", "must be an http:// or https:// URL"),
        ("ftp://fleet.example.net", "must be an http:// or https:// URL"),
        ("fleet:80", "must be an http:// or https:// URL"),
        ("http://[::1:8080", "is not a URL"),
    ],
)
def test_a_server_that_is_not_an_http_url_is_a_usage_error(
    server: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert once_against(server, tmp_path) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--interval", "soon"], "--interval must be a number of seconds"),
        (["--interval", "0"], "--interval must be a number of seconds, at least 1"),
        (["--long-poll", "nan"], "--long-poll must be a number"),
        (["--backend", "zypper"], "unknown backend 'zypper'"),
        (["--backend", "ostree", "--os", ""], "--os is required with --backend ostree"),
        (["--reboot-command", "systemctl 'reboot"], "--reboot-command"),
        (["--pre-reboot-command", "drain 'calls"], "--pre-reboot-command"),
        (["--pre-reboot-command", "drain", "--pre-reboot-timeout", "0"], "at least 1"),
    ],
)
def test_configuration_errors_exit_2_with_one_line_before_any_report(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "token").write_text("t\n")
    with serving(Reply) as server:
        code = main(
            [
                *("--once", "--config", "/nonexistent", "--server", server.url),
                *("--token-file", str(tmp_path / "token"), "--state-dir", str(tmp_path)),
                *args,
            ]
        )
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert server.requests == []


def test_a_rejected_report_in_once_mode_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with serving(lambda: Reply(403, {}, (b"unknown token",))) as server:
        assert once_against(server.url, tmp_path) == 1
    assert "HTTP 403: unknown token" in capsys.readouterr().err
