"""Real OSTree fixtures: an archive repo with commits, served over HTTP, and a test sysroot."""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

KERNEL = "5.14.0-503.el9.x86_64"
OS_NAME = "callos"
REF = "callos/9/x86_64/production"


def ostree(*args: str) -> str:
    return subprocess.run(
        ["ostree", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def make_archive_repo(path: Path, versions: list[str]) -> list[str]:
    """An archive-mode repo whose REF has one bootable commit per version; their checksums."""
    ostree("init", f"--repo={path}", "--mode=archive")
    tree = path.parent / "tree"
    (tree / "usr" / "lib" / "modules" / KERNEL).mkdir(parents=True, exist_ok=True)
    (tree / "usr" / "lib" / "modules" / KERNEL / "vmlinuz").write_bytes(b"not a real kernel")
    (tree / "usr" / "etc").mkdir(parents=True, exist_ok=True)
    commits = []
    for version in versions:
        (tree / "usr" / "lib" / "os-release").write_text(
            f'ID=callos\nPRETTY_NAME="CallOS {version}"\nVERSION_ID={version}\n'
        )
        commits.append(
            ostree(
                "commit",
                f"--repo={path}",
                f"--branch={REF}",
                f"--tree=dir={tree}",
                f"--subject=CallOS {version}",
                f"--add-metadata-string=version={version}",
            )
        )
    return commits


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def serve_directory(path: Path) -> Iterator[str]:
    """Serve ``path`` over HTTP on 127.0.0.1; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(path))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def sysroot(path: Path, remote_url: str, booted: str) -> Iterator[Path]:
    """A test sysroot with the OS initialised, the remote added and ``booted`` deployed."""
    path.mkdir(parents=True)
    ostree("admin", "init-fs", str(path))
    ostree("admin", "os-init", f"--sysroot={path}", OS_NAME)
    repo = f"--repo={path}/ostree/repo"
    ostree(repo, "remote", "add", "--no-gpg-verify", OS_NAME, remote_url)
    ostree(repo, "pull", OS_NAME, booted)
    origin = path.parent / "booted.origin"
    origin.write_text(f"[origin]\nrefspec={OS_NAME}:{REF}\n")
    ostree(
        "admin", "deploy", f"--sysroot={path}", f"--os={OS_NAME}", f"--origin-file={origin}", booted
    )
    try:
        yield path
    finally:
        # Deployment directories get the immutable bit; clear it so the tree can be removed.
        subprocess.run(["chattr", "-R", "-i", str(path)], check=False, capture_output=True)


SIMULATED_REBOOT = """\
import re, subprocess, sys, uuid
sysroot, booted_file, boot_id_file = sys.argv[1:4]
status = subprocess.run(["ostree", "admin", "status", "--sysroot=" + sysroot],
                        check=True, capture_output=True, text=True).stdout
first = re.search(r"^[* ] \\S+ ([0-9a-f]{64})\\.\\d+", status, re.M).group(1)
open(booted_file, "w").write(first + "\\n")  # the bootloader's default entry boots
open(boot_id_file, "w").write(str(uuid.uuid4()) + "\\n")
"""
