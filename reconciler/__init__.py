"""GitOps reconciler for fleets of OSTree-based servers."""

__version__ = "0.1.0"
