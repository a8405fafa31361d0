"""Following the fleet repo: a refused tip is judged once, not at every poll."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

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
