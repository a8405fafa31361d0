"""The commit format accepts what a real `ostree commit` produces."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.fleetrepo.models import Stream


def _ostree(*args: str) -> str:
    return subprocess.run(
        ["ostree", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.mark.needs_tool("ostree")
def test_real_ostree_commit_checksum_is_a_valid_stream_commit(tmp_path: Path) -> None:
    repo, tree = tmp_path / "repo", tmp_path / "tree"
    (tree / "usr" / "lib" / "modules" / "5.14.0-503.el9.x86_64").mkdir(parents=True)
    (tree / "usr" / "lib" / "modules" / "5.14.0-503.el9.x86_64" / "vmlinuz").write_bytes(b"k")
    (tree / "usr" / "lib" / "os-release").write_text('ID=callos\nPRETTY_NAME="CallOS 9"\n')
    _ostree("init", f"--repo={repo}", "--mode=archive")
    checksum = _ostree(
        "commit",
        f"--repo={repo}",
        "--branch=callos/9/x86_64/staging",
        f"--tree=dir={tree}",
        "--subject=test build",
    )
    stream = Stream.model_validate(
        {
            "apiVersion": "ostree-fleet/v1alpha1",
            "kind": "Stream",
            "name": "staging",
            "remote": "callos",
            "ref": "callos/9/x86_64/staging",
            "commit": checksum,
        }
    )
    assert stream.commit == _ostree("rev-parse", f"--repo={repo}", "callos/9/x86_64/staging")
