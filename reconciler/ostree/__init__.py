"""The OSTree repositories that hold the builds, seen from the reconciler: whether a commit
a fleet revision names exists there (:mod:`.commits` decides what to ask, :mod:`.remote`
asks a repository over HTTP or on disk).
"""
