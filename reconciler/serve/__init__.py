"""`reconciler serve`: the daemon (:mod:`.daemon`) that joins the Git mirror, the rollout
engine and the agents' reports through :mod:`.service`; the HTTP API (:mod:`.api`), webhooks,
Prometheus metrics and the write-back of notes and promotions to Git.
"""
