"""`reconciler plan`: what a fleet-repo change would do, before it is merged. The review as
data (:mod:`.model`), how it is computed from the base and proposed revisions (:mod:`.change`),
how it is printed (:mod:`.render`), and the client that reads a running reconciler's state
(:mod:`.live`, also used by `reconciler status`).
"""
