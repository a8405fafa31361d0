"""kill -9 a rollout at random points, restart it, and check it completes without harm."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from reconciler.state.store import Store
from tests.conftest import ROOT
from tests.crash_driver import GROUPS, HOSTS, NEWER

KILLS = 12


def _start(db: Path, world: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.crash_driver", str(db), str(world)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_rollout_survives_kill_9_at_random_points(tmp_path: Path) -> None:
    db, world = tmp_path / "state.sqlite", tmp_path / "world.json"
    rng = random.Random(20261125)
    kills = 0
    for _ in range(KILLS):
        process = _start(db, world)
        time.sleep(rng.uniform(0.3, 1.2))  # importing takes ~0.4 s; some kills land before
        if process.poll() is not None:
            process.communicate()
            break
        os.kill(process.pid, signal.SIGKILL)
        process.communicate()  # reaps it and closes its pipes
        kills += 1
    final = _start(db, world)
    out, err = final.communicate(timeout=300)
    assert final.returncode == 0, err[-2000:]
    assert out.startswith("DONE")
    assert kills >= 3, "the run finished before it could be killed; raise its length"
    _check_events(db)


def _check_events(db: Path) -> None:
    store = Store(db)
    events = store.events()
    store.close()
    site = {host: labels["site"] for host, labels in HOSTS.items()}
    updating: dict[str, set[str]] = defaultdict(set)  # group -> hosts allowed to reboot
    offered: dict[tuple[str, int | None, str], int] = defaultdict(int)
    opened: dict[tuple[str, int | None], list[int]] = defaultdict(list)
    for event in events:
        group, host = event.group, event.host
        if event.kind == "reboot_allowed":
            assert host is not None
            updating[group].add(host)
            same_site = [h for h in updating[group] if site[h] == site[host]]
            assert len(same_site) <= 1, f"budget (1 per site) exceeded at {event.at}: {same_site}"
        elif (
            event.kind
            in ("host_succeeded", "host_failed", "reboot_revoked", "superseded_host_finished")
            and host is not None
        ):
            updating[group].discard(host)
        elif event.kind == "host_offered":
            assert host is not None
            offered[(group, event.rollout, host)] += 1
        elif event.kind == "wave_opened":
            assert event.wave is not None
            opened[(group, event.rollout)].append(event.wave)
    assert all(count == 1 for count in offered.values()), "a host was offered twice"
    for key, waves in opened.items():
        assert waves == sorted(set(waves)), f"wave re-run or out of order in {key}: {waves}"
    completed = {e.group for e in events if e.kind == "rollout_completed" and e.commit == NEWER}
    assert completed == set(GROUPS)
    assert not [e for e in events if e.kind == "host_failed"]
