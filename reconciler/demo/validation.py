"""The simulated demo (`make demo` without `ostree`): validation, then the engine in virtual time.

It copies the example fleet into a new Git repository, validates the committed revision, then
commits a pull request with typical mistakes and shows what review would see, while the last
good revision stays valid. Then it runs the rollout engine on that fleet in virtual time
(reconciler.demo.simulated). Everything happens in a temporary directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from reconciler.cli import main as reconciler
from reconciler.demo import simulated
from reconciler.fleetrepo.loader import load_fleet_or_raise
from reconciler.fleetrepo.sources import GitRevisionSource

EXAMPLE = Path(__file__).resolve().parents[2] / "fleet-repo-schema" / "examples" / "callos"

BROKEN_EDITS = {
    # A typo in a field name, a commit pasted with a missing character, a misspelt zone.
    "groups/callservers-nyc.yaml": [("  soakTime: 4h", "  soakTime: 4h\n  maxUnavailible: 2")],
    "streams/production.yaml": [("commit: 3f9a0c2e", "commit: 3f9a0c2")],
    "groups/callservers-sin.yaml": [("Asia/Singapore", "Asia/Singapur")],
}


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _commit(repo: Path, message: str, *flags: str) -> None:
    _git(
        repo,
        "-c",
        "user.name=Ops",
        "-c",
        "user.email=ops@example.net",
        "commit",
        "-q",
        *flags,
        "-m",
        message,
    )


def _banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def run() -> int:
    if not EXAMPLE.is_dir():
        print(f"demo: example fleet not found at {EXAMPLE}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="fleet-demo-") as tmp:
        repo = Path(tmp) / "fleet"
        shutil.copytree(EXAMPLE, repo)
        _git(repo, "init", "-q", "-b", "main")
        _git(repo, "add", "-A")
        _commit(repo, "Initial fleet")
        _banner("reconciler validate --rev HEAD  (the example fleet, read from Git)")
        good = reconciler(["validate", str(repo), "--rev", "HEAD"])

        for name, edits in BROKEN_EDITS.items():
            path = repo / name
            text = path.read_text()
            for old, new in edits:
                text = text.replace(old, new)
            path.write_text(text)
        _commit(repo, "Bump production, tune nyc", "-a")
        _banner("reconciler validate --rev HEAD  (a pull request with three mistakes)")
        bad = reconciler(["validate", str(repo), "--rev", "HEAD"])
        _banner("reconciler validate --rev HEAD~1 --format github  (last good revision)")
        last_good = reconciler(["validate", str(repo), "--rev", "HEAD~1", "--format", "github"])
        print(f"\nexit codes: good={good} broken={bad} last-good={last_good}")

        fleet = load_fleet_or_raise(GitRevisionSource(repo, "HEAD~1"))
        _git(repo, "reset", "-q", "--hard", "HEAD~1")
        staging = repo / "streams" / "staging.yaml"
        staging.write_text(
            staging.read_text()
            .replace(fleet.streams["staging"].commit, "b" * 64)
            .replace("9.20261124.1", "9.20261125.0")
        )
        _git(
            repo,
            "-c",
            "user.name=CI",
            "-c",
            "user.email=ci@example.net",
            "commit",
            "-q",
            "-am",
            "staging: build 9.20261125.0",
        )
        bad_build = load_fleet_or_raise(GitRevisionSource(repo, "HEAD"))
        simulated.run(fleet, bad_build, Path(tmp))
    return 0 if (good, bad, last_good) == (0, 1, 0) else 1


if __name__ == "__main__":
    sys.exit(run())
