"""Everything that talks to the fleet repo's Git: the local mirror and the revision gate
(:mod:`.source`), credentials (:mod:`.auth`), fetch and push (:mod:`.remote`), commit
signatures (:mod:`.signatures`), writing commits (:mod:`.writer`) and the rollout notes
(:mod:`.notes`).

pygit2 and ``git`` are called here and nowhere else; their errors leave as
:mod:`reconciler.errors` types.
"""
