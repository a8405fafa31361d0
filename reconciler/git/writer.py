"""How the reconciler writes to the fleet repo: as a configured identity, optionally signed.

Two things are written: rollout notes (``refs/notes/rollouts``) and promotion commits. Both
are pushed by :func:`reconciler.git.remote.push_rebuilding`, never with force.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pygit2

from reconciler.errors import GitPushFailed


@dataclass(frozen=True)
class GitIdentity:
    """Who the reconciler is in Git history: author and committer of what it writes."""

    name: str = "fleet reconciler"
    email: str = "reconciler@localhost"

    def signature(self, at: datetime) -> pygit2.Signature:
        offset = at.utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset else 0
        return pygit2.Signature(self.name, self.email, int(at.timestamp()), minutes)


@dataclass(frozen=True)
class CommitSigner:
    """Signs commits the way `git commit -S` does: an SSH key file (``gpg.format=ssh``) or an
    OpenPGP key id with an optional GnuPG home."""

    ssh_key: Path | None = None
    gpg_key: str | None = None
    gpg_home: Path | None = None

    @property
    def configured(self) -> bool:
        return self.ssh_key is not None or self.gpg_key is not None

    def sign(self, payload: bytes) -> str:
        """An armored detached signature of ``payload`` (the commit object's text)."""
        if self.ssh_key is not None:
            with tempfile.TemporaryDirectory() as tmp:
                data = Path(tmp) / "commit"
                data.write_bytes(payload)
                _run(["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(self.ssh_key), str(data)])
                return (Path(tmp) / "commit.sig").read_text()
        if self.gpg_key is not None:
            home = ["--homedir", str(self.gpg_home)] if self.gpg_home else []
            command = ["gpg", *home, "--batch", "--no-tty", "--armor", "--detach-sign"]
            return _run([*command, "--local-user", self.gpg_key], payload).decode()
        raise ValueError("no signing key configured")


#: A signing key that asks for a passphrase or a touch must not hold the mirror for long.
SIGNING_TIMEOUT_SECONDS = 60


def _run(command: list[str], stdin: bytes | None = None) -> bytes:
    try:
        result = subprocess.run(
            command,
            input=stdin if stdin is not None else b"",  # never inherit a terminal to prompt on
            capture_output=True,
            check=False,
            timeout=SIGNING_TIMEOUT_SECONDS,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitPushFailed(f"cannot sign: {command[0]}: {exc}") from exc
    if result.returncode != 0:
        detail = result.stderr.decode(errors="replace").strip()
        raise GitPushFailed(f"cannot sign with {command[0]}: {detail}")
    return result.stdout


def create_commit(
    repo: pygit2.Repository,
    tree: pygit2.Oid,
    parents: list[pygit2.Oid | str],
    message: str,
    identity: GitIdentity,
    at: datetime,
    signer: CommitSigner | None = None,
) -> pygit2.Oid:
    """A commit object (not on any branch), signed when a signer is configured."""
    who = identity.signature(at)
    if signer is None or not signer.configured:
        return repo.create_commit(None, who, who, message, tree, parents)
    # The stubs say Oid; libgit2 gives the commit object's text, which is what gets signed.
    payload = str(repo.create_commit_string(who, who, message, tree, parents))
    return repo.create_commit_with_signature(payload, signer.sign(payload.encode()))
