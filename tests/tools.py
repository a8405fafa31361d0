"""What several tests need from the machine: a free port, and the rule for a missing tool."""

from __future__ import annotations

import os
import shutil
import socket

import pytest


def missing_tool(message: str) -> None:
    """A tool the test needs is not installed: skip, but fail when CI is set (`.ci/run`
    installs every tool, so a skip there would hide a broken install step)."""
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must not skip this test", pytrace=False)
    pytest.skip(message)


def require_tool(tool: str) -> None:
    """:func:`missing_tool` unless ``tool`` is on PATH."""
    if shutil.which(tool) is None:
        missing_tool(f"`{tool}` is not installed (.ci/run installs it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
