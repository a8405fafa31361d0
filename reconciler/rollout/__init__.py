"""The rollout engine: a pure planner over durable per-group state."""
