"""The agent API and the operators' read-only status API (FastAPI)."""
