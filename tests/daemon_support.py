"""A real daemon (Git mirror, watch, scheduler, uvicorn) in a thread, for tests."""

from reconciler.serve.daemon import DaemonThread as BackgroundDaemon

__all__ = ["BackgroundDaemon"]
