"""Real OSTree parts for the demo and the tests: archive repos, HTTP serving, test sysroots.

Everything here runs the real `ostree` tool. The only fake in the demo is the reboot:
:data:`SIMULATED_REBOOT` makes the sysroot's default deployment "booted" with a new boot id,
or, for a host whose health check fails, falls back to the previous deployment the way
greenboot does.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseRequestHandler

KERNEL = "5.14.0-503.el9.x86_64"
OS_NAME = "callos"
REF = "callos/9/x86_64/production"


def ostree(*args: str) -> str:
    return subprocess.run(
        ["ostree", *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def have_ostree() -> bool:
    return shutil.which("ostree") is not None


def make_archive_repo(path: Path, versions: list[str]) -> list[str]:
    """An archive-mode repo whose REF has one bootable commit per version; their checksums."""
    ostree("init", f"--repo={path}", "--mode=archive")
    tree = path.parent / f"{path.name}-tree"
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
    with serve_on_localhost(functools.partial(_QuietHandler, directory=str(path))) as url:
        yield url


@contextmanager
def serve_on_localhost(handler: Callable[..., BaseRequestHandler]) -> Iterator[str]:
    """An HTTP server with ``handler`` on a free port of 127.0.0.1; yields the base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def make_sysroot(path: Path, remote_url: str, booted: str) -> Path:
    """A test sysroot with the OS initialised, the remote added and ``booted`` deployed."""
    path.mkdir(parents=True)
    ostree("admin", "init-fs", str(path))
    ostree("admin", "os-init", f"--sysroot={path}", OS_NAME)
    repo = f"--repo={path}/ostree/repo"
    ostree(repo, "remote", "add", "--no-gpg-verify", OS_NAME, remote_url)
    ostree(repo, "pull", OS_NAME, booted)
    origin = path.parent / f"{path.name}.origin"
    origin.write_text(f"[origin]\nrefspec={OS_NAME}:{REF}\n")
    ostree(
        "admin", "deploy", f"--sysroot={path}", f"--os={OS_NAME}", f"--origin-file={origin}", booted
    )
    return path


def remove_sysroot(path: Path) -> None:
    """Deployment directories get the immutable bit; clear it so the tree can be removed."""
    subprocess.run(["chattr", "-R", "-i", str(path)], check=False, capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def sysroot(path: Path, remote_url: str, booted: str) -> Iterator[Path]:
    make_sysroot(path, remote_url, booted)
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-R", "-i", str(path)], check=False, capture_output=True)


#: `python reboot.py SYSROOT BOOTED_FILE BOOT_ID_FILE [BAD_COMMIT]`: boot the default
#: deployment, or, when it is BAD_COMMIT, fall back to the one before it (greenboot-style).
SIMULATED_REBOOT = """\
import re, subprocess, sys, uuid
sysroot, booted_file, boot_id_file = sys.argv[1:4]
bad = sys.argv[4] if len(sys.argv) > 4 else None
status = subprocess.run(["ostree", "admin", "status", "--sysroot=" + sysroot],
                        check=True, capture_output=True, text=True).stdout
listed = re.findall(r"^[* ] \\S+ ([0-9a-f]{64})\\.\\d+", status, re.M)
current = open(booted_file).read().strip()
boot = listed[0]
if boot == bad:  # health checks fail on this commit: greenboot reboots into the previous one
    boot = current
open(booted_file, "w").write(boot + "\\n")
open(boot_id_file, "w").write(str(uuid.uuid4()) + "\\n")
"""
