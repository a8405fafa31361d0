"""A real daemon (Git mirror, watch, scheduler, uvicorn) in a thread, for tests."""

from reconciler.daemon import DaemonThread as BackgroundDaemon

__all__ = ["BackgroundDaemon"]
