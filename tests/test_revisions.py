"""Following the fleet repo: a refused tip is judged once, not at every poll."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from reconciler.git import source
from reconciler.serve import daemon as daemon_module
from reconciler.serve import revisions
from reconciler.serve.daemon import open_daemon
from tests.test_daemon import config, no_urls
from tests.test_gitsource import Remote, replace


def test_a_refused_tip_is_judged_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    daemon = open_daemon(config(tmp_path, origin))
    judged: list[str] = []
    real = revisions.consider_revision

    def counting(mirror: Any, tip: str, *args: Any, **kwargs: Any) -> Any:
        judged.append(tip)
        return real(mirror, tip, *args, **kwargs)

    monkeypatch.setattr(revisions, "consider_revision", counting)
    bad = origin.commit(
        "typo", replace("groups/callservers-nyc.yaml", "stream: production", "stream: prodution")
    )
    for _ in range(5):  # five polls of the same refused tip
        assert not daemon.sync().accepted
    assert judged == [bad]

    fixed = origin.commit(
        "fix", replace("groups/callservers-nyc.yaml", "stream: prodution", "stream: production")
    )
    assert daemon.sync().accepted  # a new tip is judged as usual
    assert judged == [bad, fixed]
    daemon.store.close()


def test_a_revision_is_loaded_judged_and_compared_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    daemon = open_daemon(config(tmp_path, origin))
    threads: dict[str, list[bool]] = {"load_fleet": [], "fleet_changes": []}

    def on_loop_thread(name: str, real: Any) -> Any:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            threads[name].append(threading.current_thread() is threading.main_thread())
            return real(*args, **kwargs)

        return recorded

    monkeypatch.setattr(source, "load_fleet", on_loop_thread("load_fleet", source.load_fleet))
    monkeypatch.setattr(
        daemon_module, "fleet_changes", on_loop_thread("fleet_changes", daemon_module.fleet_changes)
    )
    kept = {group: daemon.service.plans[group] for group in daemon.service.fleet.groups}
    origin.commit("lab only", replace("groups/staging-lab.yaml", "soakTime: 30m", "soakTime: 1h"))
    verdict = asyncio.run(daemon.sync_pass(asyncio.to_thread))
    assert verdict.accepted
    assert threads == {"load_fleet": [False], "fleet_changes": [False]}  # a worker thread
    replanned = {g for g, plan in kept.items() if daemon.service.plans.get(g) is not plan}
    assert replanned == {"staging-lab"}
    daemon.store.close()
    daemon.reports.close()


def test_a_restart_takes_the_applied_revision_back_without_parsing_it(tmp_path: Path) -> None:
    origin = Remote(tmp_path)
    origin.commit("no example urls", no_urls)
    first = open_daemon(config(tmp_path, origin))
    files = first.follower.parsed.misses
    assert files > 0
    first.store.close()
    first.reports.close()
    again = open_daemon(config(tmp_path, origin))
    assert (again.follower.parsed.misses, again.follower.parsed.hits) == (0, files)
    assert again.service.fleet == first.service.fleet
    again.store.close()
    again.reports.close()
