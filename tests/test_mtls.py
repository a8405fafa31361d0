"""Mutual TLS: agents prove who they are with a certificate from the fleet CA, instead of or
on top of their token. A real CA made with `openssl`, a real uvicorn with TLS on 127.0.0.1,
and the agent's own client."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.agent.client import ReconcilerClient, ReportRejected, ServerUnreachable
from reconciler.cli import main
from reconciler.clock import ManualClock
from reconciler.serve.api.identity import AgentAuth, certificate_names
from tests.api_support import running_api
from tests.engine_harness import START
from tests.fleets import build_fleet
from tests.test_api import GROUPS, HOSTS, report

EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def ca(directory: Path, name: str) -> None:
    openssl(
        "req", "-x509", *EC, "-keyout", f"{name}.key", "-out", f"{name}.pem",
        "-subj", f"/CN={name}", "-days", "2", cwd=directory,
    )  # fmt: skip


def issue(directory: Path, authority: str, name: str, extensions: str) -> None:
    """A certificate for ``name`` signed by ``authority``, the way a fleet CA enrols a host."""
    (directory / f"{name}.ext").write_text(extensions)
    openssl(
        "req", *EC, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}",
        cwd=directory,
    )  # fmt: skip
    openssl(
        "x509", "-req", "-in", f"{name}.csr", "-CA", f"{authority}.pem",
        "-CAkey", f"{authority}.key", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
        "-extfile", f"{name}.ext", cwd=directory,
    )  # fmt: skip


@dataclass
class Pki:
    root: Path

    def path(self, name: str, kind: str = "pem") -> str:
        return str(self.root / f"{name}.{kind}")


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca(tmp_path, "fleet-ca")
    ca(tmp_path, "rogue-ca")
    issue(tmp_path, "fleet-ca", "server", "subjectAltName=IP:127.0.0.1\n")
    for host in ("c1", "c2"):
        issue(tmp_path, "fleet-ca", host, f"subjectAltName=DNS:{host}\n")
    issue(tmp_path, "rogue-ca", "rogue-c1", "subjectAltName=DNS:c1\n")
    return Pki(tmp_path)


@pytest.fixture
def serve(pki: Pki, tmp_path: Path) -> object:
    def start(auth: AgentAuth) -> object:
        return running_api(
            build_fleet(GROUPS, HOSTS),
            tmp_path / f"{auth}.sqlite",
            ManualClock(START),
            pki.path("server"),
            pki.path("server", "key"),
            client_ca=pki.path("fleet-ca"),
            agent_auth=auth,
        )

    return start


def agent(url: str, pki: Pki, token: str = "", cert: str | None = None) -> ReconcilerClient:
    return ReconcilerClient(
        url,
        token,
        timeout=10,
        ca_file=pki.path("fleet-ca"),
        client_cert=pki.path(cert) if cert else None,
        client_key=pki.path(cert, "key") if cert else None,
    )


@pytest.mark.needs_tool("openssl")
def test_a_certificate_alone_identifies_its_host(pki: Pki, serve: object) -> None:
    with serve(AgentAuth.CERTIFICATE) as api:  # type: ignore[operator]
        answer = agent(api.url, pki, cert="c1").report(report())
        assert answer["host"] == "c1"
        with pytest.raises(ReportRejected, match="401"):
            agent(api.url, pki, token="c1").report(report())  # a token alone is not enough
        with pytest.raises(ServerUnreachable):  # refused in the TLS handshake
            agent(api.url, pki, cert="rogue-c1").report(report())


@pytest.mark.needs_tool("openssl")
def test_with_both_the_token_and_the_certificate_must_name_the_same_host(
    pki: Pki, serve: object
) -> None:
    with serve(AgentAuth.BOTH) as api:  # type: ignore[operator]
        assert agent(api.url, pki, token="c1", cert="c1").report(report())["host"] == "c1"
        with pytest.raises(ReportRejected, match="403"):
            agent(api.url, pki, token="c2", cert="c1").report(report())
        with pytest.raises(ReportRejected, match="401"):
            agent(api.url, pki, cert="c1").report(report())  # the token is required too


@pytest.mark.needs_tool("openssl")
def test_with_tokens_a_client_certificate_is_optional(pki: Pki, serve: object) -> None:
    with serve(AgentAuth.TOKEN) as api:  # type: ignore[operator]
        assert agent(api.url, pki, token="c2").report(report())["host"] == "c2"
        assert agent(api.url, pki, token="c2", cert="c1").report(report())["host"] == "c2"


def test_a_certificate_names_its_host_by_dns_name_or_common_name() -> None:
    assert certificate_names({"subjectAltName": (("DNS", "c1"), ("IP Address", "10.0.0.1"))}) == [
        "c1"
    ]
    assert certificate_names({"subject": ((("commonName", "c2"),),)}) == ["c2"]
    assert certificate_names({}) == []


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--agent-auth", "certificate"], "needs --client-ca"),
        (["--client-ca", "ca.pem"], "need HTTPS"),
        (["--agent-auth", "fingerprint"], "fingerprint"),
    ],
)
def test_serve_checks_the_mutual_tls_settings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    args = ["serve", "--repo", str(tmp_path), "--state-dir", str(tmp_path / "s"), *flags]
    assert main(args) == 2
    assert message in capsys.readouterr().err
