"""`reconciler plan`: what a fleet-repo change would do, before it is merged. The review as
data (:mod:`.model`), how it is computed from the base and proposed revisions (:mod:`.change`,
with what blocks in :mod:`.blockers`, the streams, promotion policies and fleet defaults that
change in :mod:`.fleetwide`, and risky values in :mod:`.risks`), how it is printed
(:mod:`.render`: :mod:`.text`, :mod:`.markdown`, :mod:`.jsondata`, in the shared words of
:mod:`.sentences`), and the client that reads a running reconciler's state (:mod:`.live`,
also used by `reconciler status`).
"""
