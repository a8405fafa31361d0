"""The rollout engine: a pure planner over durable per-group state.

:mod:`.planner` runs a pass: the facts it starts from (:mod:`.facts`), the steps that decide
(:mod:`.steps`, over a :mod:`.ledger` of decisions) and the explanation of the result
(:mod:`.explanation`). It reads :mod:`.spec`, :mod:`.observed` and :mod:`.windows`, and hands
back :mod:`.decisions` with :mod:`.reasons`; :mod:`.state` is what persists between passes.
:mod:`.engine` is the runner that joins the planner to a store and a clock.
"""
