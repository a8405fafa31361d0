"""Commit signature checks, configured on the server (never in the fleet repo itself).

When trust is configured, only revisions whose head commit is signed by a trusted key take
effect: OpenPGP signatures are verified with `gpg` against a dedicated home directory that
holds only the trusted keys; SSH signatures with `ssh-keygen -Y verify` against an
allowed-signers file, for the committer's e-mail as principal and the `git` namespace.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pygit2

SSH_HEADER = "-----BEGIN SSH SIGNATURE-----"


@dataclass(frozen=True)
class SignatureTrust:
    gpg_home: Path | None = None  # a GnuPG home holding only trusted public keys
    allowed_signers: Path | None = None  # ssh-keygen allowed-signers file
    #: Every commit between the applied revision and the tip must be signed, merge commits
    #: included, not only the tip: a signed merge of an unsigned branch is refused.
    every_commit: bool = False

    @property
    def configured(self) -> bool:
        return self.gpg_home is not None or self.allowed_signers is not None


def check_commit_signature(repo_path: Path, revision: str, trust: SignatureTrust) -> str | None:
    """None when ``revision`` is signed by a trusted key; otherwise why it is refused."""
    repo = pygit2.Repository(str(repo_path))
    commit = repo[revision].peel(pygit2.Commit)
    signature, payload = commit.gpg_signature  # (None, None) when unsigned; SSH too
    if not signature:
        return f"commit {revision[:12]} is not signed; a trusted signature is required"
    text = signature.decode(errors="replace") if isinstance(signature, bytes) else signature
    data = payload if isinstance(payload, bytes) else str(payload).encode()
    with tempfile.TemporaryDirectory() as tmp:
        signature_file, payload_file = Path(tmp) / "signature", Path(tmp) / "payload"
        signature_file.write_text(text)
        payload_file.write_bytes(data)
        if text.lstrip().startswith(SSH_HEADER):
            return _ssh(trust, signature_file, data, commit.committer.email, revision)
        return _gpg(trust, signature_file, payload_file, revision)


def _gpg(trust: SignatureTrust, signature: Path, payload: Path, revision: str) -> str | None:
    if trust.gpg_home is None:
        return f"commit {revision[:12]} has an OpenPGP signature but no OpenPGP keys are trusted"
    result = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(trust.gpg_home),
            "--batch",
            "--no-tty",
            "--status-fd",
            "1",
            "--verify",
            str(signature),
            str(payload),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    status = result.stdout
    # gpg exits 0 and says VALIDSIG even for a revoked or expired key: require GOODSIG and
    # refuse every status that says the key or signature should no longer be trusted.
    refusals = ("REVKEYSIG", "EXPKEYSIG", "EXPSIG", "ERRSIG", "BADSIG", "NO_PUBKEY")
    if (
        result.returncode == 0
        and "[GNUPG:] GOODSIG" in status
        and "[GNUPG:] VALIDSIG" in status
        and not any(f"[GNUPG:] {word}" in status for word in refusals)
    ):
        return None
    detail = next((line for line in status.splitlines() if any(w in line for w in refusals)), "")
    return f"commit {revision[:12]}: OpenPGP signature not trusted ({detail or 'invalid'})"


def _ssh(
    trust: SignatureTrust, signature: Path, payload: bytes, email: str, revision: str
) -> str | None:
    if trust.allowed_signers is None:
        return f"commit {revision[:12]} has an SSH signature but no SSH keys are trusted"
    result = subprocess.run(
        [
            "ssh-keygen",
            "-Y",
            "verify",
            "-f",
            str(trust.allowed_signers),
            "-I",
            email,
            "-n",
            "git",
            "-s",
            str(signature),
        ],
        input=payload,
        capture_output=True,
        check=False,
    )
    if result.returncode == 0:
        return None
    detail = (result.stderr or result.stdout).decode(errors="replace").strip().splitlines()
    return (
        f"commit {revision[:12]}: SSH signature not trusted for {email} "
        f"({detail[-1] if detail else 'invalid'})"
    )
