"""`reconciler-agent`: report to the reconciler and apply assignments, forever or `--once`.

Configuration comes from flags, then a config file (INI, section [agent], same names as the
long flags with dashes), then defaults. The agent identifies itself by its token only.
`reconciler-agent enroll --name HOST` makes that token (enroll.py).

Exit codes: 0 done (`--once`: the cycle ran), 1 `--once` got no usable answer from the
server (unreachable, refused or rejected), 2 a usage or configuration error.
"""

import argparse
import configparser
import logging
import math
import os
import shlex
import ssl
import sys
import time
from typing import Any, Dict, List, Optional

from reconciler.agent import AGENT_VERSION
from reconciler.agent.agent import BOOT_ID_FILE, Agent
from reconciler.agent.client import (
    Backoff,
    ReconcilerClient,
    ReportRejected,
    ServerUnreachable,
    plaintext_warning,
    server_problem,
)
from reconciler.agent.drain import DEFERRAL_FILE_NAME, DeferralFile, PreRebootHook
from reconciler.agent.enroll import run_enroll
from reconciler.agent.greenboot import MOTD_FILE
from reconciler.agent.ostree import OstreeBackend
from reconciler.agent.rpmostree import RpmOstreeBackend
from reconciler.agent.runner import Runner

log = logging.getLogger("reconciler-agent")

CONFIG_FILE = "/etc/reconciler-agent/agent.conf"
DEFAULTS: Dict[str, str] = {
    "server": "",
    "token-file": "/etc/reconciler-agent/token",
    "backend": "rpm-ostree",
    "sysroot": "",
    "os": "",
    "interval": "60",
    "long-poll": "0",
    "reboot-command": "systemctl reboot",
    "pre-reboot-command": "",  # the drain hook (drain.py): must exit 0 before a reboot
    "pre-reboot-timeout": "600",
    "state-dir": "/var/lib/reconciler-agent",  # where a deferred reboot is remembered
    "boot-id-file": BOOT_ID_FILE,
    "greenboot-status-file": MOTD_FILE,
    "booted-commit-file": "",
    "ca-file": "",
    "client-cert": "",  # mutual TLS: this host's certificate from the fleet CA (PEM)
    "client-key": "",  # and its key, unless it is in the certificate file
}


class ConfigurationError(Exception):
    """A setting is missing or makes no sense; ``str()`` says which (exit code 2)."""


def parse_args(argv: Optional[List[str]]) -> Dict[str, str]:
    parser = argparse.ArgumentParser(
        prog="reconciler-agent",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default=CONFIG_FILE)
    for name in DEFAULTS:
        parser.add_argument("--" + name, dest=name.replace("-", "_"))
    parser.add_argument("--once", action="store_true", help="one report/apply cycle, then exit")
    parser.add_argument("--version", action="version", version=AGENT_VERSION)
    args = parser.parse_args(argv)
    config = configparser.ConfigParser()
    config.read(args.config)  # a missing file is fine: flags and defaults remain
    section = config["agent"] if config.has_section("agent") else {}
    settings = {
        name: (getattr(args, name.replace("-", "_")) or section.get(name) or DEFAULTS[name])
        for name in DEFAULTS
    }
    settings["once"] = "1" if args.once else ""
    return settings


def number(settings: Dict[str, str], name: str, least: float) -> float:
    """The setting ``name`` as a finite number of at least ``least``."""
    try:
        value = float(settings[name])
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < least:
        raise ConfigurationError(
            f"--{name} must be a number of seconds, at least {least:g}, not {settings[name]!r}"
        )
    return value


def command(settings: Dict[str, str], name: str) -> List[str]:
    """The setting ``name`` split like a shell would (no shell runs it)."""
    try:
        return shlex.split(settings[name])
    except ValueError as exc:  # an unclosed quote
        raise ConfigurationError(f"--{name} {settings[name]!r}: {exc}") from exc


def build_agent(settings: Dict[str, str], runner: Runner) -> Agent:
    if settings["backend"] == "ostree":
        if not settings["os"]:
            raise ConfigurationError("--os is required with --backend ostree")
        backend: Any = OstreeBackend(
            runner,
            settings["os"],
            settings["sysroot"] or None,
            settings["booted-commit-file"] or None,
        )
    elif settings["backend"] == "rpm-ostree":
        backend = RpmOstreeBackend(runner)
    else:
        raise ConfigurationError(f"unknown backend {settings['backend']!r}")
    pre_reboot = None
    if settings["pre-reboot-command"]:
        pre_reboot = PreRebootHook(
            command(settings, "pre-reboot-command"),
            number(settings, "pre-reboot-timeout", 1),
        )
    return Agent(
        backend,
        command(settings, "reboot-command"),
        runner,
        boot_id_file=settings["boot-id-file"],
        greenboot_file=settings["greenboot-status-file"],
        pre_reboot=pre_reboot,
        deferral_file=DeferralFile(os.path.join(settings["state-dir"], DEFERRAL_FILE_NAME)),
    )


def cycle(agent: Agent, client: ReconcilerClient, long_poll: float) -> Dict[str, Any]:
    """Report, apply, and report again at once if anything changed on the host."""
    assignment = client.report(agent.report(), wait=long_poll)
    before, deferral = agent.last_apply, agent.deferral
    outcome = agent.apply(assignment)
    reason = assignment.get("reason")
    log.info(
        "assignment %s: %s (%s)",
        assignment.get("action"),
        outcome,
        reason.get("message", "") if isinstance(reason, dict) else "",
    )
    if agent.last_apply is not before or agent.deferral != deferral:
        assignment = client.report(agent.report())
    return assignment


def main(argv: Optional[List[str]] = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] == "enroll":
        return run_enroll(arguments[1:], CONFIG_FILE, DEFAULTS["token-file"])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = parse_args(arguments)
    if not settings["server"]:
        print(
            "reconciler-agent: --server (or server= in the config file) is required",
            file=sys.stderr,
        )
        return 2
    problem = server_problem(settings["server"])
    if problem:
        print(f"reconciler-agent: {problem}", file=sys.stderr)
        return 2
    warning = plaintext_warning(settings["server"])
    if warning:
        log.warning("INSECURE: %s", warning)
    token = ""
    try:
        with open(settings["token-file"]) as handle:
            token = handle.read().strip()
    except OSError as exc:
        if not settings["client-cert"]:  # with a certificate, a token is the server's call
            print(f"reconciler-agent: cannot read the token: {exc}", file=sys.stderr)
            return 2
    try:
        runner = Runner()
        agent = build_agent(settings, runner)
        interval, long_poll = number(settings, "interval", 1), number(settings, "long-poll", 0)
    except ConfigurationError as exc:
        print(f"reconciler-agent: {exc}", file=sys.stderr)
        return 2
    try:
        client = ReconcilerClient(
            settings["server"],
            token,
            ca_file=settings["ca-file"] or None,
            client_cert=settings["client-cert"] or None,
            client_key=settings["client-key"] or None,
        )
    except (OSError, ssl.SSLError) as exc:
        print(f"reconciler-agent: cannot load the TLS files: {exc}", file=sys.stderr)
        return 2
    backoff = Backoff()
    while True:
        try:
            assignment = cycle(agent, client, long_poll)
            backoff.reset()
            # The server's hint, kept within [1 s, interval]; a long-poll answer already
            # waited on the server, so only the 1 s floor applies then.
            delay = (
                MIN_DELAY if long_poll else _bounded(assignment.get("reportAfterSeconds"), interval)
            )
        except (ServerUnreachable, ReportRejected) as exc:
            if settings["once"]:
                print(f"reconciler-agent: {exc}", file=sys.stderr)
                return 1
            delay = max(MIN_DELAY, backoff.next_delay())
            log.warning("report failed (%s); retrying in %.0f s", exc, delay)
        if settings["once"]:
            return 0
        time.sleep(delay)


MIN_DELAY = 1.0


def _bounded(hint: Any, interval: float) -> float:
    """A report delay from the server, clamped to [MIN_DELAY, interval]; junk means interval."""
    try:
        value = float(hint)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an int past 1e308
        return interval
    if not math.isfinite(value):
        return interval
    return min(max(value, MIN_DELAY), interval)


if __name__ == "__main__":
    sys.exit(main())
