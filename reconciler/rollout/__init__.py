"""The rollout engine: a pure planner over durable per-group state (:mod:`.planner`), what
it reads (:mod:`.spec`, :mod:`.observed`, :mod:`.windows`) and hands back (:mod:`.decisions`,
:mod:`.reasons`), and the runner that joins it to a store and a clock (:mod:`.engine`)."""
