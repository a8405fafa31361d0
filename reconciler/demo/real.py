"""`make demo`: the whole system on one machine, in about half a minute.

Real parts: an OSTree archive repository with two builds served on 127.0.0.1, a bare Git
fleet repo pushed to with `git`, `reconciler serve` (mirror, watch, gate, API on uvicorn), and
five `reconciler-agent` processes with the ostree backend on their own test sysroots. The only
fake is the reboot (a script; on one host it plays greenboot falling back because the new
build's health check fails).

The story: an invalid pull request is refused and the last good revision stays in force; then
the fix, staging on build 2.0, is predicted first with the real planner in virtual time
(`reconciler plan --predict`, what if the host that will fail fails), and merged. The lab
server takes it and runs it healthily for the soak time, and the reconciler promotes it to
production by itself, with a commit whose trailers say why. The production canary updates and
soaks; with `prometheus` installed, the group has a health gate too: a real Prometheus on
127.0.0.1 scrapes each call server's call-setup success ratio, and the next wave opens only
once the canary's ratio passes the check `call-setup-success` (the wave's reason says so). The
next wave opens, the first host of that wave fails its greenboot check and falls back, and the
rollout halts there. A table sets each milestone against its prediction: the same ones, in the
same order, within a few seconds (reconciler/demo/forecast.py). Last, what an auditor sees:
`git log --notes=rollouts` in the fleet repo. Without `ostree` it says how to install it and
shows the same engine on simulated hosts; without `prometheus` it says how to install it and
runs without the gate.
"""

from __future__ import annotations

import hashlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from reconciler.demo import validation
from reconciler.demo.forecast import (
    DEMO_REBOOT,
    DEMO_STAGE,
    TOLERANCE,
    Comparison,
    compare,
    demo_assumptions,
    predicted_steps,
    real_steps,
)
from reconciler.demo.prometheus import have_prometheus, running_prometheus
from reconciler.demo.testbed import (
    OS_NAME,
    REF,
    SIMULATED_REBOOT,
    have_ostree,
    make_archive_repo,
    make_sysroot,
    remove_sysroot,
    serve_directory,
)
from reconciler.fleetrepo.fleet import Fleet
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import DirectorySource
from reconciler.git.writer import GitIdentity
from reconciler.review.timeline import predict_change
from reconciler.rollout.planner import GroupPlan
from reconciler.rollout.prediction import Prediction
from reconciler.rollout.spec import rollout_order
from reconciler.serve.daemon import DaemonThread, ServeConfig
from reconciler.serve.prometheus import PrometheusConnection
from reconciler.serve.server import Listen
from reconciler.state.store import StoredEvent

LAB_HOST = "lab-01"
CALL_HOSTS = [f"call-0{i}" for i in range(1, 5)]
HOSTS = [LAB_HOST, *CALL_HOSTS]
LAB = "lab"
GROUP = "callservers"
PROMOTION_SOAK = "5s"
GATE = "call-setup-success"
#: The callservers group's health check: the soaking wave's worst call-setup success ratio.
HEALTH_CHECK = (
    "healthChecks:\n"
    f"  - name: {GATE}\n"
    "    query: 'min(callos_call_setup_success_ratio{instance=~\"$hosts\"})'\n"
    "    successCondition: '>= 0.99'\n"
    "    failureCondition: '< 0.95'\n"
    "    interval: 5s\n"
    "    consecutiveSuccesses: 1\n"
)
HEADER = "apiVersion: ostree-fleet/v1alpha1\n"
STYLE = {
    "in_sync": "green",
    "failed": "bold red",
    "rolled_back": "bold red",
    "updating": "cyan",
    "staged": "blue",
    "staging": "blue",
    "pending": "white",
    "stale": "yellow",
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=Ops", "-c", "user.email=ops@example.net", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def write_fleet(
    root: Path, repo_url: str, commit: str, version: str, *, gated: bool = False
) -> None:
    for folder in ("streams", "groups", "hosts"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "fleet.yaml").write_text(
        HEADER + "kind: Fleet\nname: demo\ndefaults:\n  rollout:\n"
        "    waves: [1, 60%]\n    soakTime: 4s\n    healthTimeout: 60s\n"
        "    rebootBudget: {maxUnavailable: 1}\n    failureThreshold: 1\n"
    )
    for stream in ("staging", "production"):
        (root / "streams" / f"{stream}.yaml").write_text(
            HEADER + f"kind: Stream\nname: {stream}\nremote: {OS_NAME}\nurl: {repo_url}\n"
            f"ref: {REF}\ncommit: {commit}\nversion: '{version}'\n"
        )
    with (root / "streams" / "production.yaml").open("a") as production:
        production.write(
            "promotion:                # promoted by the reconciler once staging's build has\n"
            f"  from: staging\n  soakTime: {PROMOTION_SOAK}\n"
            "  minHealthyHosts: 1       # run this long, healthy, on this many hosts\n"
        )
    (root / "groups" / f"{LAB}.yaml").write_text(
        HEADER + f"kind: Group\nname: {LAB}\nstream: staging\nhosts: [{LAB_HOST}]\n"
        "maintenanceWindows: []\n"
    )
    (root / "groups" / f"{GROUP}.yaml").write_text(
        HEADER + f"kind: Group\nname: {GROUP}\nstream: production\n"
        f"hosts: [{', '.join(CALL_HOSTS)}]\ncanaries: [call-01]\nmaintenanceWindows: []\n"
        + (HEALTH_CHECK if gated else "")
    )
    lines = [HEADER + "kind: HostInventory", "labels: {site: demo}", "hosts:"]
    for host in HOSTS:
        digest = hashlib.sha256(f"token-{host}".encode()).hexdigest()
        lines += [f"  - name: {host}", f"    tokenSha256: {digest}"]
    (root / "hosts" / "demo.yaml").write_text("\n".join(lines) + "\n")


def start_agent(
    tmp: Path, host: str, server: str, bad_commit: str | None
) -> subprocess.Popen[bytes]:
    home = tmp / "hosts" / host
    (home / "token").write_text(f"token-{host}\n")
    (home / "motd").write_text("Boot Status is GREEN - Health Check SUCCESS\n")
    reboot = [
        sys.executable,
        str(tmp / "reboot.py"),
        str(home / "sysroot"),
        str(home / "booted"),
        str(home / "boot_id"),
        *([bad_commit] if bad_commit else []),
    ]
    command = [
        sys.executable,
        "-m",
        "reconciler.agent",
        "--config",
        "/nonexistent",
        "--server",
        server,
        "--token-file",
        str(home / "token"),
        "--backend",
        "ostree",
        "--os",
        OS_NAME,
        "--sysroot",
        str(home / "sysroot"),
        "--booted-commit-file",
        str(home / "booted"),
        "--boot-id-file",
        str(home / "boot_id"),
        "--greenboot-status-file",
        str(home / "motd"),
        "--reboot-command",
        subprocess.list2cmdline(reboot),
        "--interval",
        "2",
        "--long-poll",
        "5",
    ]
    with (home / "agent.log").open("wb") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,  # its own process group, so cleanup reaches its children
        )


def view(plans: dict[str, GroupPlan], versions: dict[str, str], title: str) -> Panel:
    """Each group's status line and a table of its hosts."""
    parts: list[str | Table] = []
    for group, plan in plans.items():
        status = plan.status
        parts.append(
            f"[bold]{group}[/] ({plan.spec.target.stream}) → {plan.spec.target.version}: "
            f"{status.phase.value}, wave {status.wave}/{status.waves_total} — "
            f"{status.reason.message}"
        )
        table = Table(expand=True)
        for column in ("host", "wave", "state", "action", "runs", "why"):
            table.add_column(column, overflow="fold")
        for host in plan.spec.order:
            host_plan = plan.hosts[host]
            state = host_plan.state.value
            table.add_row(
                host,
                str(plan.spec.wave_of[host] + 1),
                f"[{STYLE.get(state, 'white')}]{state}[/]",
                host_plan.action.value,
                versions.get(host, "?"),
                host_plan.reason.message,
            )
        parts.append(table)
    return Panel(Group(*(parts or ["starting…"])), title=title)


def wait_until(check: Callable[[], bool], seconds: float, refresh: Callable[[], None]) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        refresh()
        if check():
            return True
        time.sleep(0.25)
    return False


def run(console: Console | None = None, budget_seconds: float = 90) -> int:  # noqa: PLR0915
    console = console or Console()
    if not have_ostree():
        console.print(
            "[yellow]`ostree` is not installed[/]: `sudo apt-get install ostree` "
            "(Debian/Ubuntu) or `sudo dnf install ostree` runs the real demo.\n"
            "Showing the SIMULATED version instead: same engine, simulated hosts, "
            "virtual time."
        )
        return validation.run()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "reboot.py").write_text(SIMULATED_REBOOT)
        console.rule("1. OSTree builds 1.0 and 2.0, served on 127.0.0.1")
        old, new = make_archive_repo(tmp / "ostree-repo", ["1.0", "2.0"])
        agents: list[subprocess.Popen[bytes]] = []
        with serve_directory(tmp / "ostree-repo") as repo_url, ExitStack() as cleanup:
            # Registered first, so they run last and whatever fails: agents, then the
            # daemon, then the sysroots (whose immutable bits would block removing tmp).
            cleanup.callback(_remove_sysroots, tmp)
            cleanup.callback(_stop_agents, agents)
            console.print(f"  {repo_url}  1.0 = {old[:12]}  2.0 = {new[:12]}")
            console.rule(
                "2. The fleet repo (bare, pushed to with git), a lab server, four call servers"
            )
            bare, work = tmp / "fleet.git", tmp / "fleet"
            subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
            # Entered before the daemon, so stopped after it: no gate query meets it gone.
            prometheus = _start_gate(console, cleanup, tmp / "prometheus")
            gated = prometheus is not None
            write_fleet(work, repo_url, old, "1.0", gated=gated)
            _git(tmp, "init", "-q", "-b", "main", str(work))
            _git(work, "remote", "add", "origin", str(bare))
            _git(work, "add", "-A")
            _git(work, "commit", "-qm", "Fleet: a lab server and four call servers on CallOS 1.0")
            _git(work, "push", "-q", "origin", "main")
            for host in HOSTS:
                home = tmp / "hosts" / host
                make_sysroot(home / "sysroot", repo_url, old)
                (home / "booted").write_text(old + "\n")
                (home / "boot_id").write_text(f"{host}-boot-1\n")
            running = cleanup.enter_context(
                DaemonThread(
                    ServeConfig(
                        repo=str(bare),
                        state_dir=tmp / "state",
                        listen=Listen("127.0.0.1", 0),
                        poll_interval=3600,
                        identity=GitIdentity("CallOS fleet reconciler", "fleet-bot@example.net"),
                        prometheus=prometheus,
                    )
                )
            )
            daemon, url = running.daemon, running.url
            console.print(f"  reconciler serve on {url}, watching {bare}")
            console.print(
                f"  staging → group {LAB} ({LAB_HOST}); production → group {GROUP} "
                f"({', '.join(CALL_HOSTS)}), promoted from staging after {PROMOTION_SOAK} healthy"
            )
            order = rollout_order(GROUP, tuple(CALL_HOSTS), ["call-01"])
            failing = order[1]  # the first host of the second wave
            versions = {host: "1.0" for host in HOSTS}
            for host in HOSTS:  # one at a time, so a failed start leaves none orphaned
                agents.append(start_agent(tmp, host, url, new if host == failing else None))
            service = daemon.service

            def in_sync_on_old() -> bool:
                plans = [service.plans.get(group) for group in (LAB, GROUP)]
                return len(service.observed) == len(HOSTS) and all(
                    plan is not None
                    and all(p.state.value == "in_sync" for p in plan.hosts.values())
                    for plan in plans
                )

            if not wait_until(in_sync_on_old, 20, lambda: None):
                console.print("[red]agents did not report in time[/]")
                return 1
            console.print("  all five agents report CallOS 1.0, in sync")

            console.rule("3. A pull request with a typo is merged")
            stream = work / "streams" / "staging.yaml"
            stream.write_text(stream.read_text().replace(old, new[:-1]))
            _git(work, "commit", "-qam", "staging: 2.0 (typo in the commit)")
            _git(work, "push", "-q", "origin", "main")
            refused_tip = _git(work, "rev-parse", "HEAD")

            def judged() -> bool:
                last = daemon.store.last_verdict()
                return last is not None and last.revision == refused_tip

            wait_until(judged, 10, lambda: None)
            verdict = daemon.store.last_verdict()
            console.print(
                f"  refused ({verdict.code if verdict else '?'}): "
                f"{verdict.message if verdict else ''}"
            )
            console.print(f"  still in force: {service.fleet.revision}")

            console.rule("4. The fix: staging moves to CallOS 2.0; production follows by itself")
            stream.write_text(stream.read_text().replace(new[:-1], new).replace("'1.0'", "'2.0'"))
            prediction = _predict(console, work, service.fleet, failing)
            _git(work, "commit", "-qam", "staging: 2.0")
            _git(work, "push", "-q", "origin", "main")
            pushed = time.monotonic()

            def refresh_versions() -> None:
                for host in HOSTS:
                    booted = (tmp / "hosts" / host / "booted").read_text().strip()
                    versions[host] = "2.0" if booted == new else "1.0"

            def finished() -> bool:
                plan = service.plans.get(GROUP)
                return (
                    plan is not None
                    and plan.spec.target.commit == new
                    and plan.status.phase.value in ("halted", "in_sync")
                )

            with Live(view({}, versions, "rollout"), console=console, refresh_per_second=8) as live:

                def refresh() -> None:
                    refresh_versions()
                    plans = {g: p for g in (LAB, GROUP) if (p := service.plans.get(g)) is not None}
                    live.update(
                        view(plans, versions, f"{time.monotonic() - pushed:.0f}s after the push")
                    )

                done = wait_until(
                    finished, max(10.0, budget_seconds - (time.monotonic() - started)), refresh
                )
            plan = service.plans.get(GROUP)
            console.print()
            console.rule("5. The promotion commit the reconciler made")
            promotion = _git(bare, "log", "-1", "--grep=Promoted-From", "--format=%H", "main")
            if promotion:
                console.print(
                    _git(
                        bare, "log", "-1", "--format=commit %H%nAuthor: %an <%ae>%n%n%B", promotion
                    )
                )
            console.rule("6. Summary")
            events = [e for e in daemon.store.events() if e.commit == new]
            for event in events:
                if event.kind in (
                    "rollout_started",
                    "wave_opened",
                    "wave_completed",
                    "host_succeeded",
                    "host_failed",
                    "rollout_halted",
                ):
                    console.print(
                        f"  {event.at:%H:%M:%S}  {event.group:12} {event.kind:16} {event.message}"
                    )
            gate_passed = _show_gate(console, events) if gated else True
            comparison = compare(
                predicted_steps(prediction),
                real_steps(events, prediction.start, ("production", GROUP)),
            )
            _show_comparison(console, comparison)
            halted = plan is not None and plan.status.phase.value == "halted"
            rolled_back = plan is not None and plan.hosts[failing].state.value == "rolled_back"
            untouched = [h for h in CALL_HOSTS if versions[h] == "1.0" and h != failing]
            console.print(
                f"\n  {sum(v == '2.0' for v in versions.values())} host(s) on 2.0; "
                f"{failing} fell back to 1.0 and will not be offered 2.0 again; production "
                f"rollout {'HALTED' if halted else plan.status.phase.value if plan else '?'} "
                f"{time.monotonic() - pushed:.0f}s after the push to staging; "
                f"{', '.join(untouched) or 'no other host'} never rebooted into 2.0."
            )

            console.rule("7. What an auditor sees: git log --notes=rollouts")
            noted = wait_until(
                lambda: "rollout halted" in _git(bare, "log", "--notes=rollouts", "main"),
                10,
                lambda: None,
            )
            console.print(_git(bare, "log", "--notes=rollouts", "--format=%h %an: %s%n%N", "main"))
            succeeded = (
                done
                and halted
                and rolled_back
                and promotion
                and noted
                and gate_passed
                and comparison.matches
            )
            return 0 if succeeded else 1


def _predict(console: Console, work: Path, in_force: Fleet | None, failing: str) -> Prediction:
    """Predict the pull request as `reconciler plan --predict` would, and print it."""
    assert in_force is not None  # the daemon took in the first revision
    proposed = load_fleet_or_raise(DirectorySource(work))
    prediction = predict_change(
        proposed, in_force, None, datetime.now(UTC), demo_assumptions(failing)
    )
    console.print(
        f"  predicted first, with the real planner in virtual time (as `reconciler plan "
        f"--predict --stage-time {DEMO_STAGE.seconds}s --reboot-time "
        f"{DEMO_REBOOT.seconds}s --what-if-fail {failing}` would):"
    )
    for step in predicted_steps(prediction):
        console.print(f"    +{step.at.total_seconds():4.0f}s  {step.what}")
    return prediction


def _show_comparison(console: Console, comparison: Comparison) -> None:
    """The prediction next to what happened."""
    table = Table(title="predicted before the push, and what happened")
    for column in ("milestone", "predicted", "real", "off by"):
        table.add_column(column)

    def seconds(value: timedelta | None) -> str:
        return f"+{value.total_seconds():.1f}s" if value is not None else "never"

    for what, expected, happened in comparison.rows:
        off = (
            f"{(happened - expected).total_seconds():+.1f}s"
            if expected is not None and happened is not None
            else "-"
        )
        table.add_row(what, seconds(expected), seconds(happened), off)
    console.print(table)
    verdict = (
        f"same milestones{'' if comparison.same_steps else ' [red]NOT[/]'}, in the same order"
        f"{'' if comparison.same_order else ' [red]NOT[/]'}, each within "
        f"{comparison.worst.total_seconds():.1f}s of its prediction (allowed: "
        f"{TOLERANCE.total_seconds():.0f}s)"
    )
    style, matched = ("green", "matched") if comparison.matches else ("bold red", "did NOT match")
    console.print(f"  [{style}]the real rollout {matched} the prediction[/]: {verdict}")


def _start_gate(
    console: Console, cleanup: ExitStack, directory: Path
) -> PrometheusConnection | None:
    """A real Prometheus for the callservers' health gate, or None (and why) without one."""
    if not have_prometheus():
        console.print(
            "  [yellow]health gate skipped[/]: `prometheus` is not installed; "
            "`sudo apt-get install prometheus` (Debian/Ubuntu) adds a real Prometheus "
            "and a health gate to this demo"
        )
        return None
    connection = cleanup.enter_context(running_prometheus(directory, CALL_HOSTS))
    console.print(
        f"  health gate: each wave of {GROUP} after the first opens only when [bold]{GATE}[/] "
        f"passes on the wave before it (its lowest call-setup success ratio >= 0.99), "
        f"from Prometheus on "
        f"{connection.url} (each call server reports 0.998)"
    )
    return connection


def _show_gate(console: Console, events: Sequence[StoredEvent]) -> bool:
    """Say which wave the health gate let open; False when none opened on it."""
    passed = f"health checks passed: {GATE}"
    opened = [e for e in events if e.kind == "wave_opened" and passed in e.message]
    for event in opened:
        wave = f"wave {event.wave + 1}" if event.wave is not None else "a wave"
        console.print(
            f"\n  health gate: {event.group} {wave} opened because {GATE} passed "
            f"on the wave before it"
        )
    if not opened:
        console.print(f"\n  [red]health gate: no wave opened on {GATE}[/]")
    return bool(opened)


def _stop_agents(agents: list[subprocess.Popen[bytes]]) -> None:
    """Stop each agent and whatever it started (an ostree pull, the reboot script)."""
    for agent in agents:
        with suppress(ProcessLookupError):
            os.killpg(agent.pid, signal.SIGTERM)
    for agent in agents:
        try:
            agent.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(agent.pid, signal.SIGKILL)
            agent.wait()


def _remove_sysroots(tmp: Path) -> None:
    for host in HOSTS:
        remove_sysroot(tmp / "hosts" / host / "sysroot")


def main() -> int:
    # The demo shows the daemon's refusals and decisions itself; its log would repeat them.
    logging.getLogger("reconciler").addHandler(logging.NullHandler())
    logging.getLogger("reconciler").propagate = False
    return run()


if __name__ == "__main__":
    sys.exit(main())
