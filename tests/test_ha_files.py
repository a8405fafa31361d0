"""The replica deployment example (deploy/ha/, docs/ha.md) is what the code accepts: HAProxy
takes its configuration, and `reconciler serve` takes the replica's settings file."""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

from reconciler.cli import serve
from tests.conftest import ROOT
from tests.tools import require_tool

HA = ROOT / "deploy" / "ha"


def test_haproxy_accepts_the_example_configuration(tmp_path: Path) -> None:
    require_tool("haproxy")
    ca = tmp_path / "ca.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=fleet CA", "-keyout", str(tmp_path / "ca.key"), "-out", str(ca)),
        ],
        check=True,
        capture_output=True,
    )
    config = tmp_path / "haproxy.cfg"
    text = (HA / "haproxy.cfg").read_text()
    assert "/etc/reconciler/ca.pem" in text
    config.write_text(text.replace("/etc/reconciler/ca.pem", str(ca)))
    checked = subprocess.run(
        ["haproxy", "-c", "-f", str(config)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # Every replica is checked on /readyz, and long-polls (300 s) fit in the timeouts.
    assert "option httpchk GET /readyz" in text
    assert "timeout server 330s" in text


def test_the_replica_settings_file_is_read_by_serve() -> None:
    args = argparse.Namespace(config=HA / "reconciler-replica.toml")
    for name in (*serve.SETTINGS, *serve.FLAGS):
        setattr(args, name.replace("-", "_"), None)
    values = serve.settings_from(args)
    assert values["store"].startswith("postgresql://")
    assert values["advertise-url"] == "https://reconciler-1.example.net:8443"
    assert values["lease-ttl"] == "15s"
    assert values["agent-auth"] == "token"  # certificates cannot be forwarded (docs/ha.md)


def test_replicas_refuse_certificate_only_agent_auth(tmp_path: Path) -> None:
    code = subprocess.run(
        [
            str(ROOT / ".venv" / "bin" / "reconciler"),
            "serve",
            "--repo",
            str(tmp_path),
            "--state-dir",
            str(tmp_path / "state"),
            "--store",
            "postgresql://nobody@127.0.0.1:1/none",
            "--agent-auth",
            "certificate",
            "--client-ca",
            str(tmp_path / "ca.pem"),
            "--tls-cert",
            str(tmp_path / "c.pem"),
            "--tls-key",
            str(tmp_path / "k.pem"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert code.returncode == 2, code.stderr
    assert "need --agent-auth token or both" in code.stderr
