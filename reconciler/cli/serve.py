"""`reconciler serve`: run the daemon. Flags, then RECONCILER_* environment variables, then an
optional TOML config file (`--config`), then defaults."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tomllib
import urllib.parse
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

from reconciler import logs
from reconciler.cli.exits import ExitCode
from reconciler.durations import parse_duration
from reconciler.errors import ReconcilerError
from reconciler.git.auth import GitCredentials
from reconciler.git.signatures import SignatureTrust
from reconciler.git.writer import CommitSigner, GitIdentity
from reconciler.serve.api.fleetlock import FleetLockSettings
from reconciler.serve.api.identity import AgentAuth
from reconciler.serve.daemon import NoValidRevision, ServeConfig, open_daemon
from reconciler.serve.prometheus import PrometheusConnection
from reconciler.serve.server import Listen, plain_http_refusal, reserve_open_files

SETTINGS: dict[str, tuple[str, Any]] = {
    # name: (help, default)
    "repo": ("fleet repo: a local path or a URL (https, ssh, file)", None),
    "branch": ("branch to follow", "main"),
    "subdir": ("the fleet's directory inside the repository", ""),
    "state-dir": ("directory for the SQLite file and the Git mirror", "/var/lib/reconciler"),
    "host": ("address to listen on", "127.0.0.1"),
    "port": ("port to listen on", "8443"),
    "tls-cert": ("certificate file for HTTPS", None),
    "tls-key": ("key file for HTTPS", None),
    "max-connections": (
        "connections open at once; when full, the one longest sending its request makes room",
        "4096",
    ),
    "header-timeout": ("seconds a client has to send a request's head", "10"),
    "body-timeout": ("seconds a client has to send a request's body, once its head is in", "30"),
    "operator-token-sha256": ("sha256 of the operators' token for the status API", None),
    "client-ca": ("PEM file of the fleet CA whose client certificates agents may present", None),
    "agent-auth": ("how agents prove who they are: token, certificate or both", "token"),
    "metrics-token-sha256": ("sha256 of a token /metrics requires (unset: /metrics is open)", None),
    "fleetlock-secret-sha256": (
        "sha256 of the secret FleetLock clients put in their base URL "
        "(serves /fleetlock/<secret>/v1/...; implies --fleetlock)",
        None,
    ),
    "fleetlock-stale-after": ("a FleetLock lock held longer than this is reported stale", "1h"),
    "poll-interval": ("seconds between polls of the remote", "30"),
    "log-format": ("text or json", "text"),
    "webhook-secret-file": ("file holding the webhook secret (enables POST /v1/webhook)", None),
    "trusted-gpg-home": ("GnuPG home holding the keys trusted to sign fleet commits", None),
    "allowed-signers": ("ssh-keygen allowed-signers file of keys trusted to sign", None),
    "git-timeout": ("seconds to wait for the fleet repo's remote to connect or answer", "60"),
    "git-username": ("user name for the fleet repo's remote (HTTPS or SSH)", None),
    "git-token-file": ("file holding an access token for an HTTPS fleet repo", None),
    "git-ssh-key": ("SSH private key for an ssh:// fleet repo (its .pub next to it)", None),
    "git-author-name": ("author of rollout notes and promotion commits", "fleet reconciler"),
    "git-author-email": ("e-mail of that author", "reconciler@localhost"),
    "signing-ssh-key": ("SSH private key that signs promotion commits", None),
    "signing-gpg-key": ("OpenPGP key id that signs promotion commits", None),
    "signing-gpg-home": ("GnuPG home holding the signing key", None),
    "prometheus-url": (
        "Prometheus base URL that health checks query (docs/health-gates.md); unset: gated "
        "waves and promotions wait",
        None,
    ),
    "prometheus-bearer-token-file": ("file holding a bearer token for Prometheus", None),
    "prometheus-username": ("basic-auth user for Prometheus", None),
    "prometheus-password-file": ("file holding the basic-auth password for Prometheus", None),
    "prometheus-ca-file": ("PEM CA bundle that signs Prometheus's HTTPS certificate", None),
    "prometheus-timeout": ("seconds a health-check query may take", "10"),
    "store": (
        "where the rollout state lives: a postgresql:// URL shared by replicas (docs/ha.md); "
        "unset: state.sqlite in --state-dir",
        None,
    ),
    "advertise-url": (
        "replicas: the URL other replicas forward requests to (default: from --host/--port)",
        None,
    ),
    "lease-ttl": ("replicas: how long a group's lease lasts without renewal", "15s"),
}


#: On/off settings: a flag, or RECONCILER_ALLOW_HISTORY_REWRITE=1, or `no-watch = true` in TOML.
FLAGS: dict[str, tuple[str, Any]] = {
    "allow-history-rewrite": ("act on a force-pushed branch that drops the applied commit", False),
    "no-watch": ("do not watch a local repository's refs; poll only", False),
    "no-push-notes": ("keep rollout notes in the mirror only (no write access)", False),
    "no-promote": ("never make promotion commits, even when streams declare promotion", False),
    "no-metrics-per-host": (
        "export group series only on /metrics, not the four per host (docs/metrics.md)",
        False,
    ),
    "fleetlock": (
        "serve the FleetLock protocol (POST /v1/pre-reboot, /v1/steady-state) for hosts "
        "with a fleetLockId",
        False,
    ),
    "insecure-http": ("serve plain HTTP on a non-loopback address (behind a TLS proxy)", False),
    "require-signed-history": (
        "with signatures required, verify every commit since the applied revision, "
        "merge commits included, not only the tip",
        False,
    ),
}


def register(verbs: Any) -> None:
    parser: argparse.ArgumentParser = verbs.add_parser(
        "serve", help="run the reconciler daemon", description=__doc__
    )
    parser.add_argument("--config", type=Path, help="TOML file with the settings below")
    for name, (text, default) in SETTINGS.items():
        parser.add_argument(f"--{name}", help=f"{text} (default: {default})")
    for name, (text, _) in FLAGS.items():
        parser.add_argument(f"--{name}", action="store_true", help=text)
    parser.set_defaults(run=run)


def settings_from(args: argparse.Namespace) -> dict[str, Any]:
    """Each setting from the first place that sets it: flag, environment, file, default."""
    from_file: dict[str, Any] = {}
    if args.config is not None:
        from_file = tomllib.loads(args.config.read_text())
    values = {}
    for name, (_, default) in {**SETTINGS, **FLAGS}.items():
        flag = getattr(args, name.replace("-", "_"))
        env = os.environ.get("RECONCILER_" + name.upper().replace("-", "_"))
        # `poll-interval = 0` in the file is a value, not "unset": skip only what is None.
        values[name] = next(
            (v for v in (flag or None, env, from_file.get(name)) if v is not None), default
        )
    return values


_N = TypeVar("_N", int, float)


def _truthy(value: Any) -> bool:
    return value is True or str(value).lower() in ("1", "true", "yes", "on")


def _number(values: dict[str, Any], name: str, kind: type[_N]) -> _N:
    try:
        return kind(values[name])
    except ValueError:
        whole = "a whole number" if kind is int else "a number"
        raise ValueError(f"--{name} must be {whole}, not {values[name]!r}") from None


def _fleetlock(values: dict[str, Any]) -> FleetLockSettings | None:
    secret_sha256 = values["fleetlock-secret-sha256"]
    if secret_sha256 is None and not _truthy(values["fleetlock"]):
        return None
    return FleetLockSettings(secret_sha256)


def run(args: argparse.Namespace) -> int:
    try:
        values = settings_from(args)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"reconciler serve: cannot read {args.config}: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    if not values["repo"]:
        print("reconciler serve: --repo (or RECONCILER_REPO) is required", file=sys.stderr)
        return ExitCode.USAGE
    logs.configure(json_lines=values["log-format"] == "json")
    os.umask(0o077)  # state, mirror and logs written here are the reconciler's alone
    try:
        listen = Listen(
            values["host"],
            _number(values, "port", int),
            values["tls-cert"],
            values["tls-key"],
            max_connections=_number(values, "max-connections", int),
            header_timeout=_number(values, "header-timeout", float),
            body_timeout=_number(values, "body-timeout", float),
            client_ca=values["client-ca"],
        )
        agent_auth = AgentAuth(values["agent-auth"])
        fleetlock_stale_after = parse_duration(str(values["fleetlock-stale-after"]))
        prometheus = _prometheus(values)
        lease_ttl = parse_duration(str(values["lease-ttl"]))
        if values["store"] and (password := urllib.parse.urlsplit(values["store"]).password):
            logs.register_secret(password)  # never in a log line or an error message
        if lease_ttl <= timedelta(0):
            raise ValueError("--lease-ttl must be positive")
        if agent_auth is not AgentAuth.TOKEN and listen.client_ca is None:
            raise ValueError(f"--agent-auth {agent_auth} needs --client-ca, the fleet CA")
        if values["store"] and agent_auth is AgentAuth.CERTIFICATE:
            # A replica forwards a request about another replica's group; the client
            # certificate cannot travel with it, the token can (docs/ha.md, "Limits").
            raise ValueError("replicas (--store postgresql://...) need --agent-auth token or both")
    except ValueError as exc:
        print(f"reconciler serve: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    refusal = plain_http_refusal(listen, _truthy(values["insecure-http"])) or reserve_open_files(
        listen
    )
    if refusal is not None:
        print(f"reconciler serve: {refusal}", file=sys.stderr)
        return ExitCode.USAGE
    secret = None
    if values["webhook-secret-file"]:
        try:
            secret = Path(values["webhook-secret-file"]).read_text().strip()
        except OSError as exc:
            print(f"reconciler serve: cannot read the webhook secret: {exc}", file=sys.stderr)
            return ExitCode.USAGE
        logs.register_secret(secret)
        if not secret:
            print(
                "reconciler serve: the webhook secret file is empty; an empty secret would "
                "let anyone trigger the daemon",
                file=sys.stderr,
            )
            return ExitCode.USAGE
    if values["signing-ssh-key"] and values["signing-gpg-key"]:
        print("reconciler serve: give one signing key, SSH or OpenPGP, not both", file=sys.stderr)
        return ExitCode.USAGE
    if values["signing-ssh-key"] and not Path(values["signing-ssh-key"]).is_file():
        print(
            f"reconciler serve: signing key {values['signing-ssh-key']} does not exist",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    config = ServeConfig(
        repo=str(values["repo"]),
        state_dir=Path(values["state-dir"]),
        branch=values["branch"],
        subdirectory=values["subdir"],
        listen=listen,
        operator_token_sha256=values["operator-token-sha256"],
        metrics_token_sha256=values["metrics-token-sha256"],
        agent_auth=agent_auth,
        poll_interval=float(values["poll-interval"]),
        allow_history_rewrite=_truthy(values["allow-history-rewrite"]),
        watch=not _truthy(values["no-watch"]),
        webhook_secret=secret,
        signatures=SignatureTrust(
            Path(values["trusted-gpg-home"]) if values["trusted-gpg-home"] else None,
            Path(values["allowed-signers"]) if values["allowed-signers"] else None,
            every_commit=_truthy(values["require-signed-history"]),
        ),
        identity=GitIdentity(values["git-author-name"], values["git-author-email"]),
        signer=CommitSigner(
            ssh_key=Path(values["signing-ssh-key"]) if values["signing-ssh-key"] else None,
            gpg_key=values["signing-gpg-key"],
            gpg_home=Path(values["signing-gpg-home"]) if values["signing-gpg-home"] else None,
        ),
        credentials=GitCredentials(
            username=values["git-username"],
            token_file=Path(values["git-token-file"]) if values["git-token-file"] else None,
            ssh_key=Path(values["git-ssh-key"]) if values["git-ssh-key"] else None,
        ),
        git_timeout=float(values["git-timeout"]),
        push_notes=not _truthy(values["no-push-notes"]),
        promote=not _truthy(values["no-promote"]),
        fleetlock=_fleetlock(values),
        fleetlock_stale_after=fleetlock_stale_after,
        metrics_per_host=not _truthy(values["no-metrics-per-host"]),
        prometheus=prometheus,
        store=values["store"],
        advertise_url=values["advertise-url"],
        lease_ttl=lease_ttl,
    )
    try:
        daemon = open_daemon(config)
    except ReconcilerError as exc:
        print(f"reconciler serve: {logs.redact(str(exc))}", file=sys.stderr)
        # No revision to serve is the fleet repo's fault; anything else (the remote cannot
        # be fetched, the state cannot be opened) is the setup's.
        return ExitCode.INVALID if isinstance(exc, NoValidRevision) else ExitCode.USAGE
    asyncio.run(daemon.run())
    return ExitCode.OK


def _prometheus(values: dict[str, Any]) -> PrometheusConnection | None:
    """Where health checks are evaluated, if anywhere."""
    if not values["prometheus-url"]:
        return None

    def path(name: str) -> Path | None:
        return Path(values[name]) if values[name] else None

    return PrometheusConnection(
        url=str(values["prometheus-url"]),
        timeout=float(values["prometheus-timeout"]),
        bearer_token_file=path("prometheus-bearer-token-file"),
        basic_auth_user=values["prometheus-username"],
        basic_auth_password_file=path("prometheus-password-file"),
        ca_file=path("prometheus-ca-file"),
    )
