"""Real OSTree fixtures for tests; the code lives in reconciler.testbed (the demo uses it too)."""

from reconciler.testbed import (
    KERNEL,
    OS_NAME,
    REF,
    SIMULATED_REBOOT,
    make_archive_repo,
    ostree,
    serve_directory,
    sysroot,
)

__all__ = [
    "KERNEL",
    "OS_NAME",
    "REF",
    "SIMULATED_REBOOT",
    "make_archive_repo",
    "ostree",
    "serve_directory",
    "sysroot",
]
