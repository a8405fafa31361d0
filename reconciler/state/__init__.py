"""Durable state: the rollout store and its event log (:mod:`.store`), the agents' last
reports (:mod:`.reports`) and the audit trail read back from them (:mod:`.history`). A new
store backend goes here.
"""
