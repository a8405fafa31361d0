"""Commit signatures with real keys made in the test: OpenPGP through gpg, SSH through
ssh-keygen; a trusted signature is applied, anything else is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from reconciler.git.signatures import SignatureTrust, check_commit_signature
from reconciler.git.source import FleetMirror, VerdictCode, consider_revision
from tests.conftest import git
from tests.test_gitsource import Remote, always


def gpg_key(home: Path, email: str) -> str:
    home.mkdir(mode=0o700)
    subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--passphrase",
            "",
            "--quick-gen-key",
            f"Ops <{email}>",
            "ed25519",
            "sign",
            "1d",
        ],
        check=True,
        capture_output=True,
    )
    listing = subprocess.run(
        ["gpg", "--homedir", str(home), "--list-keys", "--with-colons"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr"))


def trusted_home(tmp: Path, signer_home: Path, fingerprint: str) -> Path:
    """A GnuPG home for the server holding only the signer's public key, marked trusted."""
    exported = subprocess.run(
        ["gpg", "--homedir", str(signer_home), "--export", fingerprint],
        check=True,
        capture_output=True,
    ).stdout
    home = tmp / "server-gnupg"
    home.mkdir(mode=0o700)
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--import"],
        input=exported,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--import-ownertrust"],
        input=f"{fingerprint}:6:\n".encode(),
        check=True,
        capture_output=True,
    )
    return home


def signed_commit(origin: Remote, message: str, *config: str) -> str:
    git(origin.work, *config, "commit", "-q", "-S", "--allow-empty", "-m", message)
    git(origin.work, "push", "-q", "origin", "main")
    return git(origin.work, "rev-parse", "HEAD")


@pytest.mark.needs_tool("gpg")
def test_gpg_signed_commit_is_applied_and_others_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops_home, rogue_home = tmp_path / "ops-gnupg", tmp_path / "rogue-gnupg"
    ops = gpg_key(ops_home, "ops@example.net")
    rogue = gpg_key(rogue_home, "rogue@example.net")
    trust = SignatureTrust(gpg_home=trusted_home(tmp_path, ops_home, ops))
    origin = Remote(tmp_path)
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")

    monkeypatch.setenv("GNUPGHOME", str(ops_home))
    good = signed_commit(origin, "signed by ops", "-c", f"user.signingkey={ops}")
    monkeypatch.setenv("GNUPGHOME", str(rogue_home))
    bad = signed_commit(origin, "signed by a stranger", "-c", f"user.signingkey={rogue}")
    git(origin.work, "commit", "-q", "--allow-empty", "-m", "unsigned")
    git(origin.work, "push", "-q", "origin", "main")
    unsigned = git(origin.work, "rev-parse", "HEAD")
    mirror.fetch()

    assert check_commit_signature(mirror.path, good, trust) is None
    assert "not trusted" in (check_commit_signature(mirror.path, bad, trust) or "")
    assert "not signed" in (check_commit_signature(mirror.path, unsigned, trust) or "")
    verdict = consider_revision(
        mirror,
        unsigned,
        None,
        None,
        commit_checker=always,
        verify_signature=lambda rev: check_commit_signature(mirror.path, rev, trust),
    )
    assert verdict.code is VerdictCode.UNSIGNED


@pytest.mark.needs_tool("ssh-keygen")
def test_ssh_signed_commit_is_applied_and_others_are_refused(tmp_path: Path) -> None:
    keys = {}
    for name in ("ops", "rogue"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(tmp_path / name)],
            check=True,
        )
        keys[name] = tmp_path / f"{name}.pub"
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'ops@example.net namespaces="git" {keys["ops"].read_text()}')
    trust = SignatureTrust(allowed_signers=allowed)
    origin = Remote(tmp_path)
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")
    ssh = ("-c", "gpg.format=ssh", "-c", "user.email=ops@example.net")
    good = signed_commit(origin, "ssh-signed by ops", *ssh, "-c", f"user.signingkey={keys['ops']}")
    bad = signed_commit(
        origin, "ssh-signed by a stranger", *ssh, "-c", f"user.signingkey={keys['rogue']}"
    )
    mirror.fetch()
    assert check_commit_signature(mirror.path, good, trust) is None
    refusal = check_commit_signature(mirror.path, bad, trust)
    assert refusal is not None
    assert "SSH signature not trusted for ops@example.net" in refusal


@pytest.mark.needs_tool("ssh-keygen")
@pytest.mark.parametrize("every_commit", [False, True])
def test_a_signed_tip_over_an_unsigned_commit_is_refused_when_every_commit_must_be_signed(
    tmp_path: Path, every_commit: bool
) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ops", "-f", str(tmp_path / "ops")],
        check=True,
    )
    key = tmp_path / "ops.pub"
    allowed = tmp_path / "allowed_signers"
    allowed.write_text(f'ops@example.net namespaces="git" {key.read_text()}')
    trust = SignatureTrust(allowed_signers=allowed, every_commit=every_commit)
    origin = Remote(tmp_path)
    ssh = ("-c", "gpg.format=ssh", "-c", "user.email=ops@example.net")
    applied = signed_commit(origin, "signed by ops", *ssh, "-c", f"user.signingkey={key}")
    # someone without a key slips a commit in; ops signs the commit on top of it
    git(origin.work, "commit", "-q", "--allow-empty", "-m", "unsigned, under a signed tip")
    tip = signed_commit(origin, "signed by ops again", *ssh, "-c", f"user.signingkey={key}")
    mirror = FleetMirror(str(origin.bare), tmp_path / "state" / "fleet.git")
    mirror.fetch()
    verdict = consider_revision(
        mirror,
        tip,
        applied,
        None,
        commit_checker=always,
        verify_signature=lambda rev: check_commit_signature(mirror.path, rev, trust),
        every_commit=trust.every_commit,
    )
    if every_commit:
        assert verdict.code is VerdictCode.UNSIGNED
        assert "is not signed" in verdict.message
    else:  # only the tip is checked: documented in docs/security.md
        assert verdict.code is not VerdictCode.UNSIGNED
